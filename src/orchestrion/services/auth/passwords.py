"""The password policy: long enough, not common, not guessable from the account.

Checked wherever a password is chosen (user creation through the API or the
``orchestrion users create`` command, a password change, the bootstrap admin), never at
login: a user with an old weak password can still log in and change it.

The list of common passwords (``common_passwords.txt``, shipped in the package) holds the
most used passwords, keyboard walks, words and names followed by years or digits, and
their usual variants. It is compared case-insensitively against the whole password.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

from orchestrion.services.auth.errors import WeakPassword

_LIST = "common_passwords.txt"
#: A local part shorter than this ("ed" of ed@example.com) is too common a substring to refuse.
_MIN_NAME = 3


@cache
def common_passwords() -> frozenset[str]:
    """The shipped list, lower-cased (read once per process)."""
    text = resources.files("orchestrion.services.auth").joinpath(_LIST).read_text("utf-8")
    return frozenset(
        line.strip().lower() for line in text.splitlines() if line.strip() and line[0] != "#"
    )


@dataclass(frozen=True)
class PasswordPolicy:
    """What a new password must satisfy (``ORCHESTRION_AUTH__PASSWORD_MIN_LENGTH``)."""

    min_length: int = 12

    def check(self, password: str, *, email: str | None = None) -> None:
        """Raise :class:`WeakPassword` (422) naming the first rule ``password`` breaks."""
        if len(password) < self.min_length:
            self._refuse(
                f"password must have at least {self.min_length} characters "
                "(ORCHESTRION_AUTH__PASSWORD_MIN_LENGTH)",
                "too short",
            )
        if len(set(password)) == 1:
            self._refuse("password must not be one character repeated", "one repeated character")
        lowered = password.lower()
        if lowered in common_passwords():
            self._refuse(
                "password is in the list of common passwords; choose a less guessable one",
                "common password",
            )
        name = (email or "").partition("@")[0].strip().lower()
        if len(name) >= _MIN_NAME and name in lowered:
            self._refuse(
                "password must not contain the email address's name", "contains the email name"
            )

    @staticmethod
    def _refuse(detail: str, rule: str) -> None:
        raise WeakPassword(detail, errors=[{"loc": ["body", "password"], "msg": rule}])
