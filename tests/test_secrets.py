"""No secret is written anywhere: API keys, tokens and URL passwords given through the environment,
the command line and the Python API are masked in every file a job, a sweep, W&B, the git archive,
the report and the view write, and in what they print."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Iterable

import git
import pytest
import yaml

from seidr import dev
from seidr.config import REPO_ROOT
from seidr.redact import MARK, Redactor, install_log_redaction, is_secret_name
from tests.servers.openai_server import OpenAIServer
from tests.test_cli import run_main, seidr_reply

ENV_KEY = "sk-SEIDRTESTSECRET-env-0123456789"  # OPENAI_API_KEY
OVERRIDE_KEY = "sk-SEIDRTESTSECRET-override-9876543210"  # model.api_key=... on the command line
SERVICE_TOKEN = "SEIDRTESTSECRET-service-token-42"  # MY_SERVICE_TOKEN, read into the config by ${oc.env:}
GIT_TOKEN = "SEIDRGITTOKEN"
REMOTE = f"https://user:{GIT_TOKEN}@127.0.0.1:9/repo.git"  # nothing listens on port 9: every push fails
SHOWN_REMOTE = f"https://user:{MARK}@127.0.0.1:9/repo.git"
ESCAPED_SHOWN_REMOTE = SHOWN_REMOTE.replace(":", "\\:")  # as Hydra writes a sweep job's overrides
NEEDLES = ("SEIDRTESTSECRET", GIT_TOKEN)  # each secret above holds one of these


def secret_env(wandb_home: Path) -> dict[str, str]:
    """The secrets in the environment, and W&B's own folders where the scan sees them."""
    return {"OPENAI_API_KEY": ENV_KEY, "MY_SERVICE_TOKEN": SERVICE_TOKEN, "GIT_REMOTE": REMOTE,
            "GIT_TERMINAL_PROMPT": "0",
            **{name: str(wandb_home) for name in ("WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR")}}


def leaky_reply(messages, body, index):
    """seidr_reply, but the model repeats secrets too (as if a prompt had shown it some): every
    writer of programs, results, the archive, W&B and the view then has one to mask."""
    text = seidr_reply(messages, body, index)
    if text.startswith("```python\n"):
        return text.replace("```python\n", f"```python\n# {OVERRIDE_KEY}\n", 1)
    return f"{text} Compare with {REMOTE}"


def git_contents(repo: Path) -> dict[str, bytes]:
    """What a git repository holds, decompressed: every object, the history with patches, config, refs."""
    def run(*args: str) -> bytes:
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, check=True).stdout

    return {"objects": run("cat-file", "--batch-all-objects", "--batch"), "log": run("log", "-p", "--all"),
            "config": run("config", "--list", "--local"), "refs": run("for-each-ref")}


def leaks(roots: Iterable[Path], *outputs: str) -> list[str]:
    """Every place under `roots` (files, and git repositories' objects) and in `outputs` where a
    secret shows."""
    found = []
    for root in roots:
        for path in [root, *sorted(root.rglob("*"))]:
            if path.is_file() and not path.is_symlink():
                data = path.read_bytes()
                found += [f"{path}: {needle}" for needle in NEEDLES if needle.encode() in data]
            elif path.is_dir() and (path / "objects").is_dir() and (path / "HEAD").is_file():
                found += [f"{path} (git {what}): {needle}" for what, data in git_contents(path).items()
                          for needle in NEEDLES if needle.encode() in data]
    found += [f"output {number}: {needle}" for number, text in enumerate(outputs) for needle in NEEDLES
              if needle in text]
    return found


def entry_point(module: str, folder: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", module, str(folder)], capture_output=True, text=True, cwd=REPO_ROOT,
                          env={**os.environ, **env}, timeout=120)


def wandb_records(run_dir: Path) -> bytes:
    [records] = list(run_dir.rglob("run-*.wandb"))
    return records.read_bytes()


def test_a_run_its_report_and_view_write_no_secret(data_dir, tmp_path):
    out, archive, env = tmp_path / "out", tmp_path / "archive", secret_env(tmp_path / "wandb-home")
    with OpenAIServer(leaky_reply, model="m") as server:
        proc = run_main("model=openai", "model.name=m", f"model.api_key={OVERRIDE_KEY}",
                        f"model.base_url={server.base_url}", "search.max_programs=12",
                        # the cache replays replies as the model gave them, and these repeat a secret
                        "model.cache=false",
                        "tracking.wandb.mode=offline", f"tracking.git.path={archive}", "tracking.git.push_retries=1",
                        "+extra.note=${oc.env:MY_SERVICE_TOKEN}", env=env, data_dir=data_dir, output_root=out)
        posts = server.posts("/v1/chat/completions")
    assert proc.returncode == 0, proc.stderr
    assert posts and all(r.headers["authorization"] == f"Bearer {OVERRIDE_KEY}" for r in posts)  # it was used
    report = entry_point("seidr.report", out, env)
    view = entry_point("seidr.view", out, env)
    assert report.returncode == 0 and view.returncode == 0, report.stderr + view.stderr

    assert leaks([tmp_path], proc.stdout, proc.stderr, report.stdout, report.stderr, view.stdout, view.stderr) == []

    # ... and the mask stands where each secret was
    [run_dir] = [path.parent for path in out.rglob("result.json")]
    hydra_dir = run_dir / ".hydra"
    assert f"- model.api_key={MARK}" in (hydra_dir / "overrides.yaml").read_text()
    assert yaml.safe_load((hydra_dir / "config.yaml").read_text())["model"]["api_key"] == MARK  # still YAML
    hydra = yaml.safe_load((hydra_dir / "hydra.yaml").read_text())["hydra"]
    assert f"model.api_key={MARK}" in hydra["overrides"]["task"] and f"model.api_key={MARK}" in \
        hydra["job"]["override_dirname"]
    warning = f"push to {SHOWN_REMOTE} failed"
    assert warning in (run_dir / "main.log").read_text() and warning in proc.stdout + proc.stderr
    programs = [json.loads(line) for line in (run_dir / "programs.jsonl").read_text().splitlines()]
    assert all(p["code"].startswith(f"# {MARK}\n") for p in programs)
    assert any(p["explanation"] and p["explanation"].endswith(SHOWN_REMOTE) for p in programs)
    result = json.loads((run_dir / "result.json").read_text())
    assert result["solved"] and result["best_program"].startswith(f"# {MARK}\n")
    records = wandb_records(run_dir)
    for masked in (b'"api_key":"***"', b'{"note":"***"}', SHOWN_REMOTE.encode()):
        assert masked in records, masked
    [table] = list(run_dir.rglob("programs_*.table.json"))
    assert all(row[6].startswith(f"# {MARK}\n") for row in json.loads(table.read_text())["data"])
    repo = git.Repo(archive)
    [branch] = [ref.path for ref in repo.refs if ref.path.startswith("refs/heads/seidr/")]
    assert repo.git.show(f"{branch}:best.py").startswith(f"# {MARK}\n")
    assert SHOWN_REMOTE in repo.git.show(f"{branch}:programs.jsonl")
    assert SHOWN_REMOTE in (run_dir / "view.html").read_text()


@pytest.mark.parametrize("sweeper", ["basic", "grids"])
def test_a_sweep_writes_no_secret(data_dir, tmp_path, sweeper):
    """Hydra's basic sweeper (its multirun.yaml is masked when the first job starts) and seidr's
    grids sweeper (masks its multirun.yaml and job list as it writes them); the LLM cache is on."""
    out, archive, env = tmp_path / "out", tmp_path / "archive", secret_env(tmp_path / "wandb-home")
    # the basic sweep takes the key from the command line, the grids sweep from OPENAI_API_KEY
    key, key_override = (OVERRIDE_KEY, [f"model.api_key={OVERRIDE_KEY}"]) if sweeper == "basic" else (ENV_KEY, [])
    with OpenAIServer(seidr_reply, model="m") as server:
        proc = run_main("-m", f"hydra/sweeper={sweeper}", "problem=fizz-buzz,gcd", "model=openai", "model.name=m",
                        *key_override, f"model.base_url={server.base_url}", "search.max_programs=6",
                        "tracking.wandb.mode=offline", f"tracking.git.path={archive}",
                        f"tracking.git.remote={REMOTE}", "tracking.git.push_retries=1", env=env, data_dir=data_dir,
                        output_root=out)
        posts = server.posts("/v1/chat/completions")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert posts and all(r.headers["authorization"] == f"Bearer {key}" for r in posts)
    [sweep_dir] = [path.parent for path in out.rglob("multirun.yaml")]
    report = entry_point("seidr.report", sweep_dir, env)
    view = entry_point("seidr.view", sweep_dir, env)
    assert report.returncode == 0 and view.returncode == 0, report.stderr + view.stderr
    assert list((out / "llm_cache").rglob("*.json"))  # the cache was written, and is scanned

    assert leaks([tmp_path], proc.stdout, proc.stderr, report.stdout, report.stderr, view.stdout, view.stderr) == []

    overrides = yaml.safe_load((sweep_dir / "multirun.yaml").read_text())["hydra"]["overrides"]["task"]
    assert f"tracking.git.remote={SHOWN_REMOTE}" in overrides
    assert "#0 : " in proc.stdout + proc.stderr and SHOWN_REMOTE in proc.stdout + proc.stderr  # Hydra's job list
    if sweeper == "grids":
        jobs = json.loads((sweep_dir / "sweep_jobs.json").read_text())
        assert all({f"tracking.git.remote={SHOWN_REMOTE}", f"tracking.git.remote={ESCAPED_SHOWN_REMOTE}"} & set(job)
                   for job in jobs), jobs
    else:
        assert f"model.api_key={MARK}" in overrides
    runs = sorted(path.parent for path in sweep_dir.rglob("result.json"))
    assert len(runs) == 2
    for run_dir in runs:
        job_overrides = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text())
        assert {f"tracking.git.remote={SHOWN_REMOTE}", f"tracking.git.remote={ESCAPED_SHOWN_REMOTE}"} & \
            set(job_overrides), job_overrides
        records = wandb_records(run_dir)
        assert b'"api_key":"***"' in records and SHOWN_REMOTE.encode() in records


def test_the_python_api_writes_no_secret(tmp_path, monkeypatch, caplog):
    for name, value in secret_env(tmp_path / "wandb-home").items():
        monkeypatch.setenv(name, value)

    def reply(messages, body, index):
        text = messages[-1]["content"]
        if "Do not write code" in text:
            return f"It adds 2 instead of doubling; compare with {REMOTE}"
        code = "print(int(input()) * 2)" if "according to a review" in text else "print(int(input()) + 2)"
        return f"```python\n# {OVERRIDE_KEY}\n{code}\n```"

    with OpenAIServer(reply, model="m") as server, caplog.at_level(logging.INFO):
        result = dev.develop("Read an integer and print twice its value.", examples=[("2", "4"), ("-5", "-10")],
                             model="openai", max_programs=10, output_dir=tmp_path / "api", overrides=[
                                 "model.name=m", f"model.base_url={server.base_url}",
                                 f"model.api_key={OVERRIDE_KEY}", "model.cache=false",
                                 f"paths.output_root={tmp_path / 'out'}", "tracking.wandb.mode=offline",
                                 f"tracking.git.path={tmp_path / 'archive'}", f"tracking.git.remote={REMOTE}",
                                 "tracking.git.push_retries=1", "+extra.note=${oc.env:MY_SERVICE_TOKEN}"])
    assert result.solved
    assert leaks([tmp_path], caplog.text) == []
    assert f"push to {SHOWN_REMOTE} failed" in caplog.text
    records = wandb_records(tmp_path / "api")
    assert b'"api_key":"***"' in records and b'{"note":"***"}' in records
    assert json.loads((tmp_path / "api" / "result.json").read_text())["best_program"].startswith(f"# {MARK}\n")


# The redactor on its own


def test_secret_names_and_counts_are_told_apart():
    for name in ("api_key", "apiKey", "OPENAI_API_KEY", "model.api_key", "+extra.auth_token", "password",
                 "client_secret", "private_key", "token"):
        assert is_secret_name(name), name
    for name in ("max_tokens", "prompt_tokens", "tokens", "key", "monkey", "keyboard", "name"):
        assert not is_secret_name(name), name


def test_urls_lose_their_passwords_and_tokens():
    redactor = Redactor()
    assert redactor.text(f"push to {REMOTE} failed") == f"push to {SHOWN_REMOTE} failed"
    assert redactor.text("https://ghp_abc123@github.com/o/r.git") == f"https://{MARK}@github.com/o/r.git"
    assert redactor.text("https://u:p@ss@host/x") == f"https://u:{MARK}@host/x"  # a password with an @
    # Hydra escapes ':' in a sweep's overrides
    assert redactor.text(r"remote=https\://user\:pw-x@h\:9/r") == rf"remote=https\://user\:{MARK}@h\:9/r"
    for kept in ("ssh://git@github.com/o/r.git", "git@github.com:o/r.git", "https://host/a?mail=a@b.org",
                 "http://127.0.0.1:8000/v1"):
        assert redactor.text(kept) == kept


def test_what_counts_as_a_secret_in_the_environment():
    redactor = Redactor.from_sources(environ={
        "MY_SERVICE_TOKEN": SERVICE_TOKEN, "DB_PASSWORD": "correct-horse", "HOME": "/home/someone-secret",
        "KEYTIMEOUT": "1", "SOME_KEY": "null", "SHORT_TOKEN": "abc", "KEY_FILE": "/tmp", "PIN_KEY": "12345678",
        "GIT_REMOTE": REMOTE})
    # the remote's password is known too, so it is masked even where no URL shows around it
    assert redactor.secrets == {SERVICE_TOKEN, "correct-horse", GIT_TOKEN}
    assert redactor.text(f"a {SERVICE_TOKEN} b correct-horse c") == f"a {MARK} b {MARK} c"


def test_config_values_are_masked_by_key_name_whatever_their_length():
    redactor = Redactor.from_sources(config={"model": {"api_key": "k", "nested": [{"token": "tok-abcdef"}]}})
    assert redactor.secrets == {"tok-abcdef"}  # "k" is too short to look for in text ...
    data = {"model": {"api_key": "k", "max_tokens": 5, "base_url": None, "secret": {"a": "b"}, "none": "none"},
            "note": "uses tok-abcdef", "flags": [True, "https://u:pw@h"]}
    assert redactor.data(data) == {  # ... but not too short to mask where its key names it
        "model": {"api_key": MARK, "max_tokens": 5, "base_url": None, "secret": {"a": MARK}, "none": "none"},
        "note": f"uses {MARK}", "flags": [True, f"https://u:{MARK}@h"]}
    assert Redactor().data({"api_key": None, "password": "null", "token": "${oc.env:T,null}"}) == \
        {"api_key": None, "password": "null", "token": "${oc.env:T,null}"}


def test_messages_mask_assignments_but_code_is_left_alone():
    redactor = Redactor()
    assert redactor.message("override_dirname: model.api_key=k,model.name=m") == \
        f"override_dirname: model.api_key={MARK},model.name=m"
    assert redactor.message('{"password": "pw", "max_tokens": 9}') == f'{{"password": "{MARK}", "max_tokens": 9}}'
    assert redactor.yaml("model:\n  api_key: sk-x\n  token: ${oc.env:T}\n") == \
        f"model:\n  api_key: '{MARK}'\n  token: ${{oc.env:T}}\n"
    code = "token = input()\npassword = token[::-1]\nprint(max_tokens)\n"
    assert redactor.text(code) == code and redactor.message(code) == code


def test_log_records_are_masked_for_every_handler(caplog):
    before = logging.getLogRecordFactory()
    try:
        install_log_redaction(Redactor([SERVICE_TOKEN]))
        with caplog.at_level(logging.INFO):
            logging.getLogger("seidr.test").warning("token %s, remote %s", SERVICE_TOKEN, REMOTE)
            try:
                raise ValueError(f"bad {SERVICE_TOKEN}")
            except ValueError:
                logging.getLogger("seidr.test").exception("failed")
    finally:
        logging.setLogRecordFactory(before)
    assert caplog.records[0].getMessage() == f"token {MARK}, remote {SHOWN_REMOTE}"
    assert leaks([], caplog.text) == [] and f"bad {MARK}" in caplog.text


def test_a_known_secret_is_masked_in_simple_disguises():
    """A program that knows a secret could print it transformed to get it past a literal search."""
    import base64
    from urllib.parse import quote

    secret = "sk-SEIDRTESTSECRET/with+odd=chars~0123"
    redactor = Redactor([secret])
    disguised = [secret[::-1], quote(secret, safe=""), secret.encode().hex(), secret.encode().hex().upper(),
                 "".join(f"%{byte:02x}" for byte in secret.encode())]
    for before in ("", "a", "ab", "abc"):  # base64 of the secret at each offset inside a longer text
        for after in ("", "z", "zz"):
            for encode in (base64.b64encode, base64.urlsafe_b64encode):
                disguised.append(encode(f"{before}{secret}{after}".encode()).decode())
    for text in disguised:
        masked = redactor.text(f"print: {text} end")
        assert MARK in masked and "SEIDRTESTSECRET" not in masked and "TESTSECRET"[::-1] not in masked, text
        # left around the mark: the encoded neighbours and at most two characters at each edge
        assert len(masked) - len("print:  end") - len(MARK) <= 12, (text, masked)
    code = "token = input()\nprint(token[::-1])\n"
    assert redactor.text(code) == code


def test_advice_keeps_its_placeholders():
    """The hint for a missing key shows where a key goes; it holds no secret to mask."""
    hint = ("the OpenAI backend needs an API key: set OPENAI_API_KEY or model.api_key=... (a local server that "
            "checks no key takes any string, e.g. model.api_key=none)")
    assert Redactor().message(hint) == hint
    for advice in ("set api_key=<key>", "token=YOUR_TOKEN.", "(model.api_key=***)"):
        assert Redactor().message(advice) == advice
    # a real value in the same places is still masked, parenthesis and all
    assert Redactor().message("(e.g. model.api_key=sk-abc123)") == f"(e.g. model.api_key={MARK}"


def test_the_missing_key_hint_reaches_the_user_whole(tmp_path):
    from tests.test_cli import assert_one_clear_error, run_main

    proc = run_main("model=openai", output_root=tmp_path)
    assert_one_clear_error(proc, "model.api_key=... (a local server", "e.g. model.api_key=none)")
