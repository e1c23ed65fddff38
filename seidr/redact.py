"""Keeping secrets out of everything seidr writes or sends (run files, logs, W&B, the git archive,
reports, views).

A `Redactor` knows the secrets of one job, gathered at the entry point from
  - the config: values of keys named like api_key, token, secret or password, anywhere in the tree;
  - the environment: values of variables whose name contains KEY, TOKEN, SECRET, PASSWORD, PASSWD,
    PASSPHRASE or CREDENTIAL
    (passed in by the caller: the library never reads the environment itself);
  - the command line: values of `key=value` overrides whose key is named like a secret;
  - passwords and tokens in the userinfo of URLs found in any of these (GIT_REMOTE, ...);
and replaces them with `***` wherever they occur, also in the simple disguises a program could
print one in to get it past a literal search: reversed, base64 (standard or URL-safe, at any
offset in a longer encoded text), hexadecimal and percent-encoded. Passwords in URLs
(`https://user:PASS@host`, and the token-only `https://TOKEN@host`) are masked in any text, known
or not. Placeholders in advice (`model.api_key=...`, `api_key=<key>`) are not secrets.

`text` is for code and program output (only those values and URL passwords change); `message`
also masks whatever follows a secret-named key (`model.api_key=...`, `api_key: ...`), for logs,
errors and configs; `data` masks nested dicts and lists by key name as well."""

from __future__ import annotations

import base64
import logging
import os
import re
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping
from urllib.parse import quote

from omegaconf import DictConfig, ListConfig, OmegaConf

from seidr.atomic import write_text_atomic

log = logging.getLogger("seidr")
MARK = "***"
# Shorter values would match ordinary text (numbers, words) everywhere; they are still masked
# where their key says what they are (api_key: ..., model.api_key=...).
MIN_SECRET_LENGTH = 6
NOT_SECRETS = frozenset({"", "null", "none", "~", "true", "false", "yes", "no", "on", "off", "???"})

_SECRET_WORDS = frozenset({"token", "secret", "secrets", "password", "passwd", "passphrase", "apikey",
                           "credential", "credentials"})
_KEY_QUALIFIERS = frozenset({"api", "access", "private", "secret", "auth", "signing"})  # api_key, private_key
_ENV_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|PASSPHRASE|CREDENTIAL", re.IGNORECASE)
_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")  # snake_case, kebab-case, camelCase, SHOUTING

# scheme://user:password@ and scheme://user@ (the user part of the latter is a token for https);
# the password may hold ':' and '@' (greedy up to the last '@' before the host). Hydra escapes
# ':' in a sweep's overrides (https\://user\:PASS@...), hence the optional backslashes.
_URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*\\?://)(?P<user>[^\s/?#@:'\"<>\\]*)"
                           r"(?:(?P<colon>\\?:)(?P<password>[^\s/?#'\"<>]*))?@")
# `name=value` (overrides), `name: value` (YAML) and `"name": "value"` (JSON) in free text
# what advice writes where a secret goes: model.api_key=..., api_key=<your key>, token=YOUR_TOKEN
_PLACEHOLDER = re.compile(r"\.{2,}|\u2026|<[^<>]*>|\[[^\[\]]*\]|\{[^{}]*\}|your[_\-\w]*|x{3,}|\*+",
                          re.IGNORECASE)
_ASSIGNMENT = re.compile(r"(?<![\w.\-/+~])(?P<key>[+~]{0,2}[A-Za-z_][\w.\-/]*)(?P<sep>['\"]?(?:=|:[ \t]+))"
                         r"(?P<quote>['\"]?)(?P<value>[^\s,'\"\]}]+)")


def is_secret_name(name: str) -> bool:
    """Whether a config key or override key names a secret: api_key, apiKey, OPENAI_API_KEY,
    auth_token, password, client_secret, ... but not max_tokens or prompt_tokens (counts)."""
    leaf = re.split(r"[./]", name.lstrip("+~"))[-1]
    words = [word.lower() for word in _WORDS.findall(leaf)]
    if any(word in _SECRET_WORDS for word in words):
        return True
    return any(word == "key" and before in _KEY_QUALIFIERS for before, word in zip(words, words[1:]))


def is_secret_env_name(name: str) -> bool:
    """Whether an environment variable's name says it holds a secret."""
    return bool(_ENV_SECRET_NAME.search(name))


def _worth_hiding(value: str) -> bool:
    """Whether a value can be searched for in any text without masking ordinary words or numbers."""
    text = value.strip()
    return len(text) >= MIN_SECRET_LENGTH and text.lower() not in NOT_SECRETS and not text.isdigit()


def _maskable(value: Any) -> bool:
    """Whether a value under a secret-named key is masked (null, booleans and 'none' say nothing)."""
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, (int, float)):
        return True
    return isinstance(value, str) and value.strip().lower() not in NOT_SECRETS and not value.startswith("${")


def disguises(secret: str) -> set[str]:
    """The forms a secret takes under simple transforms, each long enough to search for: reversed,
    percent-encoded, hexadecimal (both cases), and base64 / URL-safe base64 at each of the three
    offsets it can start at inside a longer encoded text (without the characters at its edges that
    depend on its neighbours)."""
    raw = secret.encode("utf-8")
    every_byte = "".join(f"%{byte:02X}" for byte in raw)  # percent-encoding of every character
    forms = {secret[::-1], quote(secret, safe=""), every_byte, every_byte.lower(), raw.hex(), raw.hex().upper()}
    for offset in range(3):
        encoded = base64.b64encode(bytes(offset) + raw).decode("ascii")
        # only the characters whose six bits all come from the secret: the first ones mix in the
        # bytes before it, the last ones the bytes after it
        core = encoded[(offset * 8 + 5) // 6:(offset + len(raw)) * 8 // 6]
        forms |= {core, core.replace("+", "-").replace("/", "_")}
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH and form != secret}


class Redactor:
    """Masks the secrets it was given, and URL passwords, in text and in nested data."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        found = {s.strip() for s in secrets if isinstance(s, str) and _worth_hiding(s)}
        self.secrets = frozenset(found)
        # longest first, so a secret that contains another is masked whole
        alternatives = sorted(found | {form for secret in found for form in disguises(secret)}, key=len, reverse=True)
        self._literal = re.compile("|".join(map(re.escape, alternatives))) if alternatives else None

    @classmethod
    def from_sources(cls, config: Any = None, environ: Mapping[str, str] | None = None,
                     overrides: Iterable[str] = ()) -> Redactor:
        """The secrets of a config, of an environment (the caller's: read at the entry point) and
        of command-line overrides."""
        secrets = set(_config_secrets(config)) if config is not None else set()
        for name, value in (environ or {}).items():
            # a variable naming a file or folder (GNOME_KEYRING_CONTROL, ...) holds a place, not a secret
            if is_secret_env_name(name) and _worth_hiding(value) and not _is_path(value):
                secrets.add(value)
            secrets.update(_url_credentials(value))  # GIT_REMOTE=https://user:TOKEN@host/...
        for override in overrides:
            key, sep, value = str(override).partition("=")
            if sep and is_secret_name(key):
                secrets.add(value)
                secrets.update(value.split(","))  # a sweep over several keys: key=a,b
            secrets.update(_url_credentials(value))
        return cls(secrets)

    def text(self, text: str) -> str:
        """Known secrets and URL passwords masked. Safe on code and program output: nothing else
        is touched."""
        if self._literal is not None:
            text = self._literal.sub(MARK, text)
        return _URL_USERINFO.sub(_mask_userinfo, text)

    def message(self, text: str) -> str:
        """`text`, and also any value written after a secret-named key (`model.api_key=...`,
        `api_key: ...`): for logs, error messages, configs and override lists, not for code."""
        parts, position = [], 0  # before `text`, so that a value it masks is still seen and quoted
        while (match := _ASSIGNMENT.search(text, position)) is not None:
            if _secret_assignment(match):
                # a bare *** after `key: ` would read as a YAML alias: quoted there
                mark = MARK if match["quote"] or "=" in match["sep"] else f"'{MARK}'"
                parts.append(text[position:match.start("value")] + mark)
                position = match.end()
            else:
                # not a secret's name: look again inside the value (override_dirname: model.api_key=...)
                parts.append(text[position:match.end("sep")])
                position = match.end("sep")
        return self.text("".join(parts) + text[position:])

    def data(self, value: Any, *, secret: bool = False) -> Any:
        """A copy of nested dicts and lists with secret-named keys' values masked and every string
        passed through `text`."""
        if isinstance(value, Mapping):
            return {key: self.data(item, secret=secret or is_secret_name(str(key)))
                    for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.data(item, secret=secret) for item in value]
        if secret and _maskable(value):
            return MARK
        return self.text(value) if isinstance(value, str) else value

    def config(self, cfg: DictConfig) -> dict[str, Any]:
        """A config resolved into plain data, with its secrets masked."""
        return self.data(OmegaConf.to_container(cfg, resolve=True))

    def yaml(self, text: str) -> str:
        """`message` for a YAML document, which stays valid YAML (a masked value is quoted)."""
        return _YAML_BARE_MARK.sub(_quote_yaml_scalar, self.message(text))

    def rewrite_file(self, path: Path) -> bool:
        """Mask the secrets in a text file someone else wrote (Hydra's .hydra/*.yaml, a sweep's job
        list); True if it changed. YAML stays YAML."""
        try:
            before = path.read_text(encoding="utf-8")
            mode = path.stat().st_mode & 0o777
        except (OSError, UnicodeDecodeError):
            return False
        after = self.yaml(before) if path.suffix in (".yaml", ".yml") else self.message(before)
        if after == before:
            return False
        try:
            write_text_atomic(path, after)
            os.chmod(path, mode)
        except OSError as error:  # e.g. a read-only folder: the job can still run; say what is left
            log.warning("could not mask the secrets in %s: %s", path, error)
            return False
        return True


# a YAML scalar that begins with *** (a masked value) would read as an alias: `key: ***`, `- ***`
_YAML_BARE_MARK = re.compile(r"(?m)^(?P<lead>[ \t]*(?:-[ \t]+)*(?:[\w.\-+~/$]+:[ \t]+)?)"
                             r"(?P<scalar>\*\*\*[^\n]*?)[ \t]*$")


def _quote_yaml_scalar(match: re.Match[str]) -> str:
    return match["lead"] + "'" + match["scalar"].replace("'", "''") + "'"


def _config_secrets(node: Any) -> Iterator[str]:
    """Values of secret-named keys in a config (resolved one by one: an interpolation that cannot
    be resolved here, such as ${hydra:...} outside a Hydra run, is skipped, not fatal)."""
    if isinstance(node, (DictConfig, Mapping)):
        keys = list(node.keys())
        for key in keys:
            try:
                value = node[key]
            except Exception:  # noqa: BLE001 - an unresolvable value holds no secret we can see
                continue
            if is_secret_name(str(key)) and isinstance(value, (str, int, float)) \
                    and not isinstance(value, bool):
                yield str(value)
            elif isinstance(value, str):
                # a URL's password is a secret wherever else it shows, even where no URL is
                # recognisable around it (escaped, quoted, cut)
                yield from _url_credentials(value)
            elif isinstance(value, (DictConfig, ListConfig, Mapping, list, tuple)):
                yield from _config_secrets(value)
    elif isinstance(node, (ListConfig, list, tuple)):
        for index in range(len(node)):
            try:
                item = node[index]
            except Exception:  # noqa: BLE001
                continue
            yield from _config_secrets(item)


def _is_path(value: str) -> bool:
    try:
        return value.startswith(("/", "~")) and Path(value).expanduser().exists()
    except (OSError, ValueError, RuntimeError):  # RuntimeError: ~name of no user (a token may start with ~)
        return False


def _userinfo_secret(match: re.Match[str]) -> str | None:
    """The secret in a URL's userinfo: the password, or for http(s) a lone user part, which is
    how GitHub and GitLab take a token (ssh://git@host only names a user)."""
    if match["password"] is not None:
        return match["password"] or None
    user = match["user"]
    web = match["scheme"].lower().rstrip(":/\\").split("+")[-1] in ("http", "https")
    return user if user and web else None


def _url_credentials(text: str) -> Iterator[str]:
    for match in _URL_USERINFO.finditer(text):
        if (secret := _userinfo_secret(match)) is not None and secret != MARK:
            yield secret


def _mask_userinfo(match: re.Match[str]) -> str:
    secret = _userinfo_secret(match)
    if secret is None or secret == MARK:
        return match[0]
    if match["password"] is not None:
        return f"{match['scheme']}{match['user']}{match['colon']}{MARK}@"
    return f"{match['scheme']}{MARK}@"


def _secret_assignment(match: re.Match[str]) -> bool:
    value = match["value"]
    # advice in parentheses or at the end of a sentence: `(e.g. model.api_key=none)`
    bare = value.rstrip(".,;:!?)") if not _PLACEHOLDER.fullmatch(value) else value
    return is_secret_name(match["key"]) and value != MARK and not value.startswith("${") and \
        bare.lower() not in NOT_SECRETS and not _PLACEHOLDER.fullmatch(bare)


class _RedactingRecords:
    """logging's record factory, wrapped: every record's message (and traceback) is masked when it
    is made, so every handler (console, main.log, ones Hydra sets up later) only sees it masked."""

    def __init__(self, base: Any, redactor: Redactor) -> None:
        self.base = base
        self.redactor = redactor
        self._formatter = logging.Formatter()

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.base(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string is logging's to report, as usual
            return record
        record.msg, record.args = self.redactor.message(message), None
        if record.exc_info:
            record.exc_text = self.redactor.message(self._formatter.formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = self.redactor.message(record.stack_info)
        return record


def install_log_redaction(redactor: Redactor) -> None:
    """Mask secrets in every log record from now on (a second call replaces the redactor)."""
    current = logging.getLogRecordFactory()
    base = current.base if isinstance(current, _RedactingRecords) else current
    logging.setLogRecordFactory(_RedactingRecords(base, redactor))
