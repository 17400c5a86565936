"""Users and logins: Argon2id password hashes, admins, disabling, ending sessions.

Passwords are hashed with Argon2id (argon2-cffi's :class:`~argon2.PasswordHasher`,
its RFC 9106 defaults); hashes never leave this module. Users are never deleted, only
disabled; the last admin cannot lose the admin flag nor be disabled.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress

from argon2.exceptions import InvalidHashError, VerificationError

from ..errors import ConflictError, InvalidValueError, NotFoundError
from .backend import Connection
from .values import Row, User, check_name, check_password, now_text, user_from_row

__all__ = ["UserMethods"]


class UserMethods:
    """The user methods of :class:`~zvpanel.storage.database.Database`."""

    def create_user(self, username: str, password: str, is_admin: bool = False) -> User:
        check_password(password)
        return self._insert_user(username, password, is_admin)

    def _insert_user(self, username: str, password: str, is_admin: bool) -> User:
        check_name(username, "username")
        if not password:
            raise InvalidValueError("password must not be empty")
        password_hash = self._hasher.hash(password)  # slow on purpose: outside the lock
        try:
            with self._write() as conn:
                user_id = conn.one(
                    "INSERT INTO users (username, password_hash, is_admin, created_at) "
                    "VALUES (?, ?, ?, ?) RETURNING id",
                    (username, password_hash, int(is_admin), now_text()),
                )[0]
        except self._integrity:
            raise ConflictError(f"user {username!r} already exists") from None
        self._notify("user", user_id)
        return self.get_user(username)

    def get_user(self, username: str) -> User:
        row = self._one("SELECT * FROM users WHERE username = ?", (username,))
        if row is None:
            raise NotFoundError(f"no user named {username!r}")
        return user_from_row(row)

    def list_users(self) -> list[User]:
        return [user_from_row(r) for r in self._all("SELECT * FROM users ORDER BY username")]

    def count_users(self) -> int:
        return self._one("SELECT count(*) AS n FROM users")["n"]

    def authenticate(self, username: str, password: str) -> User | None:
        """The user if the password is right, else None (unknown users cost the same time)."""
        row = self._one("SELECT * FROM users WHERE username = ?", (username,))
        if row is None:
            # Verify against a dummy hash so that response time does not reveal which
            # user names exist.
            with suppress(VerificationError):
                self._hasher.verify(self._get_dummy_hash(), password)
            return None
        try:
            self._hasher.verify(row["password_hash"], password)
        except (VerificationError, InvalidHashError):
            return None
        if row["disabled"]:
            return None  # checked after the hash: a disabled user costs the same time
        if self._hasher.check_needs_rehash(row["password_hash"]):
            self._store_hash(row["id"], password)
        return user_from_row(row)

    def _get_dummy_hash(self) -> str:
        with self._lock:
            if self._dummy_hash is None:
                self._dummy_hash = self._hasher.hash("zvpanel dummy password")
            return self._dummy_hash

    def _store_hash(self, user_id: int, password: str) -> None:
        password_hash = self._hasher.hash(password)
        with self._write() as conn:
            conn.execute(
                "UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, user_id)
            )

    def reset_password(self, username: str, password: str) -> None:
        """Set a new password; every token the user holds stops working."""
        check_password(password)
        password_hash = self._hasher.hash(password)  # slow on purpose: outside the lock
        self._end_tokens(username, "password_hash = ?", (password_hash,))

    def set_disabled(self, username: str, disabled: bool = True) -> User:
        """Disable (or enable) a user; users are never deleted.

        A disabled user cannot log in and every token it holds is refused; enabling it
        again does not bring those tokens back. The last enabled admin cannot be disabled.
        """

        def keep_an_admin(conn: Connection, row: Row) -> None:
            if not (disabled and row["is_admin"] and not row["disabled"]):
                return
            admins = conn.execute(
                "SELECT count(*) FROM users WHERE is_admin = 1 AND disabled = 0"
            ).fetchone()[0]
            if admins <= 1:
                raise ConflictError(
                    f"{username!r} is the only enabled admin; make another user admin first"
                )

        return self._end_tokens(username, "disabled = ?", (int(disabled),), keep_an_admin)

    def end_sessions(self, username: str) -> User:
        """Make every token ``username`` holds stop working (Log out)."""
        return self._end_tokens(username)

    def _end_tokens(
        self,
        username: str,
        changes: str = "",
        params: tuple = (),
        check: Callable[[Connection, Row], None] | None = None,
    ) -> User:
        """Apply ``changes`` (SQL ``SET`` items) to a user and raise its token version.

        Tokens carry the version they were issued with, so every older token is refused.
        """
        with self._write(users=True) as conn:
            row = conn.execute("SELECT * FROM users WHERE username = ?", (username,)).fetchone()
            if row is None:
                raise NotFoundError(f"no user named {username!r}")
            if check is not None:
                check(conn, row)
            sets = f"{changes}, " if changes else ""
            conn.execute(
                f"UPDATE users SET {sets}token_version = token_version + 1 WHERE id = ?",
                (*params, row["id"]),
            )
        self._notify("user", row["id"])
        return self.get_user(username)

    def set_admin(self, username: str, is_admin: bool = True) -> User:
        with self._write() as conn:
            row = conn.execute("SELECT * FROM users WHERE username = ?", (username,)).fetchone()
            if row is None:
                raise NotFoundError(f"no user named {username!r}")
            if row["is_admin"] and not is_admin:
                admins = conn.execute("SELECT count(*) FROM users WHERE is_admin = 1").fetchone()[0]
                if admins <= 1:
                    raise ConflictError(
                        f"{username!r} is the only admin; make another user admin first"
                    )
            conn.execute("UPDATE users SET is_admin = ? WHERE id = ?", (int(is_admin), row["id"]))
        self._notify("user", row["id"])
        return self.get_user(username)
