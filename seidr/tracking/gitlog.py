"""A git archive of every job's programs (GitPython).

Each job commits to its own branch, `seidr/<dataset>/<problem>/<language>/<config hash>-<run hash>`,
in a repository that is created if missing (by default under the output root). A dataset,
problem or language name holding anything but letters, digits, `_` and `-` keeps those and gets a
digest of itself, so every name makes a valid branch and two names never share one. The run hash is
of the job's output folder, so jobs with the same config never share a branch and a resumed job
(same folder) continues its own, committing only programs the branch does not hold yet. Commits are written with git's plumbing (blobs, `mktree`, a
commit, then a compare-and-swap update of the branch), so no work tree is checked out and jobs
never touch each other's files. That is why concurrent jobs can share one archive without a lock:
git writes objects atomically, each job owns its branch, and `update-ref` with the expected old
value refuses a lost update instead of corrupting anything; the job then re-reads the branch,
keeps what the other writer committed, and tries again. Pushes go in batches (every `push_every`
programs and at the end) with retries; a failed push is a warning and the commits wait for the
next one."""

from __future__ import annotations

import fcntl
import hashlib
import logging
import re
import subprocess
import time
from io import BytesIO
from pathlib import Path
from typing import Any

import git
from gitdb import IStream

from seidr.redact import Redactor
from seidr.search.tree import Program

log = logging.getLogger("seidr.tracking")


CAS_TRIES = 5  # a branch moved under the job this often in a row: warn and try at the next commit


REF_PART_CHARS = 60  # a component of a branch name keeps this much of the name it stands for


def ref_part(name: str) -> str:
    """`name` as one component of a git ref name, valid whatever `name` holds (`..`, `@{`, a
    leading dot, `.lock`, control characters, slashes, any length). A name that had to change
    gets a digest of itself appended, so two names never give one component."""
    readable = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")[:REF_PART_CHARS].strip("-")
    if readable and readable == name:
        return name
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{readable}-{digest}" if readable else digest


def branch_name(dataset: str, problem: str, language: str, config: dict[str, Any], run: str | Path) -> str:
    """One branch per job: problem, language, search configuration and run (its output folder);
    valid for git whatever the dataset, problem and language are called."""
    digest = hashlib.sha256(repr(sorted(config.items())).encode()).hexdigest()[:10]
    # the folder's absolute path: stable when a job resumes in it, distinct for concurrent jobs
    run_digest = hashlib.sha256(str(Path(run).expanduser().resolve()).encode()).hexdigest()[:8]
    return f"seidr/{ref_part(dataset)}/{ref_part(problem)}/{ref_part(language)}/{digest}-{run_digest}"


class GitArchive:
    def __init__(self, path: str | Path, branch: str, extension: str, *, remote: str | None = None,
                 author_name: str = "seidr", author_email: str = "seidr@localhost", commit_every: int = 10,
                 push_every: int = 50, push_retries: int = 3, redactor: Redactor | None = None) -> None:
        self.path = Path(path).expanduser()
        # files and commit messages are masked before they become objects (which are pushed and
        # cannot be rewritten), and the remote's URL, whose userinfo may hold a token, in messages
        self.redactor = redactor or Redactor()
        self.branch = branch
        self.extension = extension
        self.remote = remote or None
        self.author = git.Actor(author_name, author_email)
        self.commit_every = max(1, commit_every)
        self.push_every = max(1, push_every)
        self.push_retries = max(1, push_retries)
        self.repo = self._open()
        self._files: dict[str, str] = {}  # path in the tree -> blob sha, for this branch
        self._carried = False  # files of earlier commits on the branch merged in
        self._tip: str | None = None  # the branch's commit as this job last saw it
        self._pending = 0  # programs not committed yet
        self._unpushed = 0
        self.commits = 0
        self.pushes_failed = 0

    def _open(self) -> git.Repo:
        if self.path.exists() and not self.path.is_dir():
            raise NotADirectoryError("it is a file, not a folder for the archive")
        try:
            return git.Repo(self.path)
        except (git.NoSuchPathError, git.InvalidGitRepositoryError):
            self.path.mkdir(parents=True, exist_ok=True)
        # jobs starting together would each `git init` the same folder, and all but one fail:
        # one creates it while the others wait, then find it made
        with open(self.path / ".seidr-init.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                return git.Repo(self.path)
            except git.InvalidGitRepositoryError:
                return git.Repo.init(self.path, bare=True)

    def _head(self) -> str | None:
        try:
            return self.repo.git.rev_parse("--verify", "--quiet", f"refs/heads/{self.branch}")
        except git.GitCommandError:
            return None

    def _blob(self, data: bytes) -> str:
        return self.repo.odb.store(IStream("blob", len(data), BytesIO(data))).hexsha.decode()

    def _mktree(self, entries: dict[str, tuple[str, str]]) -> str:
        """A tree object from {name: (mode, sha)}; plumbing, so no index and no work tree."""
        listing = "".join(f"{mode} {'tree' if mode == '040000' else 'blob'} {sha}\t{name}\n"
                          for name, (mode, sha) in sorted(entries.items()))
        made = subprocess.run(["git", "mktree"], input=listing, cwd=self.path, capture_output=True, text=True,
                              check=True)
        return made.stdout.strip()

    def _tree(self) -> str:
        top: dict[str, tuple[str, str]] = {}
        programs: dict[str, tuple[str, str]] = {}
        for name, sha in self._files.items():
            folder, _, leaf = name.rpartition("/")
            (programs if folder == "programs" else top)[leaf if folder else name] = ("100644", sha)
        if programs:
            top["programs"] = ("040000", self._mktree(programs))
        return self._mktree(top)

    def add_program(self, program: Program, programs_jsonl: Path) -> None:
        self._load_branch()
        name = f"programs/{program.id:04d}.{self.extension}"
        blob = self._blob(self.redactor.text(program.code).encode())
        if self._files.get(name) == blob:
            return  # a resumed job replaying a program an earlier run of it archived: nothing new
        self._files[name] = blob
        self._pending += 1
        if self._pending >= self.commit_every:
            self.commit(programs_jsonl, f"{program.id + 1} programs")

    def commit(self, programs_jsonl: Path, message: str, extra: dict[str, bytes] | None = None) -> str | None:
        """Commit what was added since the last commit (with the run's files); returns the commit."""
        if programs_jsonl.is_file():
            self._files["programs.jsonl"] = self._blob(self._masked(programs_jsonl.read_bytes()))
        for name, data in (extra or {}).items():
            self._files[name] = self._blob(self._masked(data))
        message = self.redactor.message(message)
        if not self._files:
            return None
        self._load_branch()
        commit, made = self._swap_in(message)
        if commit is None:
            return None
        if not made:  # the branch already holds all of it: no empty commit
            self._pending = 0
            return commit
        self.commits += 1
        self._unpushed += self._pending
        self._pending = 0
        if self.remote and self._unpushed >= self.push_every:
            self.push()
        return commit

    def _load_branch(self) -> None:
        """Once: what earlier runs of this job committed on the branch, kept in its next commits."""
        if not self._carried:
            self._tip = self._head()
            self._carry(self._tip)
            self._carried = True

    def _carry(self, head: str | None) -> None:
        """Files of the branch at `head` that this job has not written (its own win)."""
        if head:
            for line in self.repo.git.ls_tree("-r", head).splitlines():
                meta, name = line.split("\t", 1)
                self._files.setdefault(name, meta.split()[2])

    def _swap_in(self, message: str) -> tuple[str | None, bool]:
        """A commit of the files on top of the branch, moved there by compare-and-swap, and
        True; the branch's commit and False if it holds the files already; None (with a warning,
        the files kept for the next commit) if the branch kept moving."""
        last = "moved"
        for attempt in range(1, CAS_TRIES + 1):
            tree = self.repo.tree(self._tree())
            if self._tip and self.repo.commit(self._tip).tree.hexsha == tree.hexsha:
                return self._tip, False
            parents = [self.repo.commit(self._tip)] if self._tip else []
            commit = git.Commit.create_from_tree(self.repo, tree, message, parent_commits=parents, head=False,
                                                 author=self.author, committer=self.author)
            try:
                # refused if anything moved the branch since this job last saw it
                self.repo.git.update_ref(f"refs/heads/{self.branch}", commit.hexsha, self._tip or "0" * 40)
            except git.GitCommandError as error:
                last = (str(error).strip().splitlines() or ["failed"])[-1].strip()
                head = self._head()
                if head == self._tip:
                    time.sleep(0.05 * attempt)  # not moved: the ref's lock was held; give it a moment
                    continue
                # another writer (a second process in the same run folder, a user) got there
                # first: build on its commit and keep its files, so neither loses anything
                self._tip = head
                self._carry(head)
                continue
            self._tip = commit.hexsha
            return commit.hexsha, True
        log.warning("git archive %s: could not move branch %s after %d tries (%s); the job's next commit tries "
                    "again, and its run folder keeps every program", self.path, self.branch, CAS_TRIES,
                    self.redactor.message(last))
        return None, False

    def finish(self, programs_jsonl: Path, result: dict[str, Any], message: str) -> None:
        """The last commit (result and best program), the best-program tag, and a final push."""
        result = self.redactor.data(result)
        extra = {"result.json": (_json(result) + "\n").encode()}
        if result.get("best_program"):
            extra[f"best.{self.extension}"] = result["best_program"].encode()
        commit = self.commit(programs_jsonl, message, extra)
        if commit:
            self.repo.create_tag(f"best/{self.branch}", ref=commit, force=True)
        if self.remote:
            self.push()

    def push(self) -> bool:
        """Push the branch and its tag; retried, and a failure only warns."""
        refspecs = [f"refs/heads/{self.branch}:refs/heads/{self.branch}"]
        if any(t.name == f"best/{self.branch}" for t in self.repo.tags):
            refspecs.append(f"+refs/tags/best/{self.branch}:refs/tags/best/{self.branch}")
        for attempt in range(1, self.push_retries + 1):
            try:
                self.repo.git.push(self.remote, *refspecs)
                self._unpushed = 0
                self._push_others()
                return True
            except git.GitCommandError as error:
                # the error quotes the command line, remote URL included
                text = self.redactor.message(str(error)).strip()
                last = text.splitlines()[-1] if text else "failed"
                if attempt < self.push_retries:
                    time.sleep(min(8.0, 0.5 * 2 ** attempt))
        self.pushes_failed += 1
        log.warning("git archive: push to %s failed after %d tries (%s); the commits stay in %s and go with the "
                    "next push", self.redactor.text(self.remote), self.push_retries, last, self.path)
        return False


    def _masked(self, data: bytes) -> bytes:
        """A file's bytes with secrets masked (text only; other bytes are kept as they are)."""
        try:
            return self.redactor.text(data.decode("utf-8")).encode("utf-8")
        except UnicodeDecodeError:
            return data

    def _push_others(self) -> None:
        """Best effort: branches of earlier jobs whose pushes failed go along (one that another
        job is moving at this moment may be refused; its own job pushes it)."""
        try:
            self.repo.git.push(self.remote, "refs/heads/seidr/*:refs/heads/seidr/*")
        except git.GitCommandError:
            pass


def _json(data: Any) -> str:
    import json

    return json.dumps(data, indent=2, ensure_ascii=False)
