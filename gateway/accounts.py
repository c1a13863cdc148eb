"""Agent accounts: creation and password hashing (argon2)."""

from __future__ import annotations

from argon2 import PasswordHasher
from sqlalchemy import select

from gateway.models import AgentRole
from gateway.store import Store
from gateway.store.tables import Agent
from gateway.store.types import utcnow

_hasher = PasswordHasher()

MIN_PASSWORD_LENGTH = 10


class AccountError(ValueError):
    """An account request that cannot be honoured; the message says why."""


def hash_password(password: str) -> str:
    return _hasher.hash(password)


async def create_agent(
    store: Store, *, email: str, name: str, role: AgentRole, password: str
) -> int:
    """Create an agent who must change the password at first login; returns the agent's id."""
    email = email.strip().lower()
    if "@" not in email:
        raise AccountError(f"not an email address: {email!r}")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"the password needs at least {MIN_PASSWORD_LENGTH} characters")
    async with store.write() as session:
        if await session.scalar(select(Agent.id).where(Agent.email == email)) is not None:
            raise AccountError(f"an agent with email {email} exists already")
        agent = Agent(
            email=email,
            name=name,
            role=role.value,
            password_hash=hash_password(password),
            must_change_password=True,
            active=True,
            created_at=utcnow(),
        )
        session.add(agent)
        await session.flush()
        return agent.id
