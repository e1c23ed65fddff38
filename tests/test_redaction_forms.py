"""Secrets under every name seidr treats as secret, in every form they can be written in: config
keys, overrides and environment variables named access_key, credentials, passphrase, ... and a
secret percent-encoded in a URL are masked; counts and ordinary words are not."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from seidr.redact import MARK, Redactor, is_secret_env_name, is_secret_name

SECRET_KEYS = ["access_key", "accessKey", "AWS_SECRET_ACCESS_KEY", "aws_access_key_id", "credentials",
               "credential", "db.credentials", "passphrase", "ssh-passphrase", "gpgPassphrase", "passwd",
               "auth_key", "signing_key", "private-key", "apikey", "api-key", "client_secret", "secrets",
               "refresh_token", "+storage.passphrase", "~old.credentials"]
NOT_SECRET_KEYS = ["max_tokens", "completion_tokens", "key", "keys", "sort_key", "cache_key", "primary_key",
                   "keyword", "access", "credit", "pass_rate", "passed", "tokenizer"]


@pytest.mark.parametrize("name", SECRET_KEYS)
def test_secret_names_are_secret(name):
    assert is_secret_name(name)


@pytest.mark.parametrize("name", NOT_SECRET_KEYS)
def test_counts_and_ordinary_keys_are_not(name):
    assert not is_secret_name(name)


@pytest.mark.parametrize("name", ["AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "DB_PASSPHRASE",
                                  "SERVICE_CREDENTIALS", "GH_TOKEN", "SMTP_PASSWD"])
def test_secret_environment_names(name):
    assert is_secret_env_name(name)


SECRETS = {"access_key": "AKIA-2f9c0d7e", "credentials": "svc-user:cr3d-xyz", "passphrase": "correct horse battery"}


def test_config_values_under_these_names_are_found_and_masked_everywhere():
    config = {"storage": dict(SECRETS), "model": {"max_tokens": 512, "name": "gpt"}}
    redactor = Redactor.from_sources(config=config)
    assert redactor.secrets >= set(SECRETS.values())
    text = " | ".join(SECRETS.values())
    assert redactor.text(text) == " | ".join([MARK] * 3)
    assert redactor.data(config) == {"storage": {key: MARK for key in SECRETS},
                                     "model": {"max_tokens": 512, "name": "gpt"}}
    assert redactor.yaml("storage:\n  passphrase: abc\n  access_key: xyz\n") == \
        f"storage:\n  passphrase: '{MARK}'\n  access_key: '{MARK}'\n"


def test_overrides_and_environment_under_these_names_are_masked():
    redactor = Redactor.from_sources(
        environ={"DB_PASSPHRASE": "open-sesame-42", "SERVICE_CREDENTIALS": "u:p-998877", "HOME": "/root"},
        overrides=["+storage.access_key=AKIA-override", "storage.credentials=a-cred-1,b-cred-2"])
    said = "open-sesame-42 u:p-998877 AKIA-override a-cred-1 b-cred-2 /root"
    assert redactor.text(said) == " ".join([MARK] * 5) + " /root"
    assert Redactor().message("storage.passphrase=hunter2 access_key: abc credentials=x max_tokens=5") == \
        f"storage.passphrase={MARK} access_key: '{MARK}' credentials={MARK} max_tokens=5"


@pytest.mark.parametrize("secret", ["p@ss/w:rd+1 x", "tok%en&more=1", "ünïcødé-sekret"])
def test_a_secret_is_masked_percent_encoded_too(secret):
    redactor = Redactor([secret])
    encoded = quote(secret, safe="")
    assert encoded != secret
    for text in (f"GET https://host/api?key={encoded}&n=1", f"plain {secret} end", f"form: token={encoded}"):
        masked = redactor.text(text)
        assert secret not in masked and encoded not in masked and MARK in masked, masked


def test_a_url_password_is_masked_even_percent_encoded_and_unknown():
    assert Redactor().text("https://me:p%40ss%2Fword@host/x") == f"https://me:{MARK}@host/x"


def test_the_length_bound_and_the_words_that_are_never_secrets():
    assert Redactor(["abcde1"]).secrets == {"abcde1"}  # six characters: long enough to look for
    assert Redactor(["abcd1", "12345678", "  none  ", "NULL", "False"]).secrets == set()
    # a value that says nothing is not masked under a secret name, in any case
    for said in ("None", "NULL", "False", "Off"):
        assert Redactor().message(f"api_key={said}") == f"api_key={said}"
    assert Redactor().data({"api_key": True, "token": False, "password": None, "secret": 0}) == \
        {"api_key": True, "token": False, "password": None, "secret": MARK}


def test_a_masked_yaml_value_stays_yaml_and_a_quoted_one_keeps_its_quotes():
    assert Redactor().message("password: hunter22") == f"password: '{MARK}'"
    assert Redactor().message('password: "hunter22"') == f'password: "{MARK}"'
    assert Redactor().message("password=hunter22") == f"password={MARK}"


def test_a_path_in_a_secret_named_variable_is_a_place_not_a_secret(tmp_path):
    key_file = tmp_path / "deploy-key"
    key_file.write_text("x")
    redactor = Redactor.from_sources(environ={
        "DEPLOY_KEY_FILE": str(key_file), "SSH_KEY_HOME": "~", "GIT_TOKEN": "/not/a/real/path-token-123",
        "RELATIVE_KEY": "relative-key-material"})
    assert redactor.secrets == {"/not/a/real/path-token-123", "relative-key-material"}
    # its disguises are masked too (the percent-encoded one among them), not the real key file's path
    assert MARK in redactor.text(quote("/not/a/real/path-token-123", safe=""))
    assert redactor.text(str(key_file)) == str(key_file)


def test_a_token_alone_in_a_url_is_masked_for_the_web_schemes_only():
    assert Redactor().text("http://tok-abc123@host/x") == f"http://{MARK}@host/x"
    assert Redactor().text("git+https://tok-abc123@host/x") == f"git+https://{MARK}@host/x"
    assert Redactor().text("ftp://anonymous@host/x") == "ftp://anonymous@host/x"


def test_log_stack_traces_are_masked_and_a_second_install_replaces_the_first(caplog):
    import logging

    from seidr.redact import install_log_redaction

    before = logging.getLogRecordFactory()
    try:
        install_log_redaction(Redactor(["first-secret-123"]))
        install_log_redaction(Redactor(["stack-secret-456"]))
        assert logging.getLogRecordFactory().base is before  # replaced, not wrapped twice
        with caplog.at_level(logging.INFO):
            logging.getLogger("seidr.test").info("first-secret-123 stack-secret-456", stack_info=True)
    finally:
        logging.setLogRecordFactory(before)
    [record] = caplog.records
    assert record.getMessage() == f"first-secret-123 {MARK}"
    # the stack shows this test's source line, secret and all: masked
    assert "stack_info=True" in record.stack_info and "stack-secret-456" not in record.stack_info


def test_a_home_relative_path_is_a_place_and_a_value_no_path_can_be_is_a_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "deploy-key").write_text("x")
    redactor = Redactor.from_sources(environ={"DEPLOY_KEY": "~/deploy-key", "API_TOKEN": "/tmp/a\0token-xyz",
                                              "OTHER_TOKEN": "~no-such-user-tok3n"})
    assert "~/deploy-key" not in redactor.secrets
    assert {"/tmp/a\0token-xyz", "~no-such-user-tok3n"} <= redactor.secrets
