"""Regenerate the initial Alembic migration from the models (development only).

Until the first release there is one migration, 0001_initial, made from
``courtesy.store.models``. After a model change run:

    .venv/bin/python scripts/regen_initial_migration.py

Once a release is out, write a new revision instead of regenerating this one.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from alembic import command
from alembic.config import Config

ROOT = Path(__file__).resolve().parents[1]
VERSIONS = ROOT / "courtesy" / "store" / "migrations" / "versions"


def main() -> int:
    for old in VERSIONS.glob("0001_*.py"):
        old.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Config()
        cfg.set_main_option("script_location", str(ROOT / "courtesy" / "store" / "migrations"))
        cfg.set_main_option("sqlalchemy.url", f"sqlite:///{tmp}/empty.db")
        command.revision(cfg, message="initial", autogenerate=True, rev_id="0001")
    generated = list(VERSIONS.glob("0001_*.py"))
    subprocess.run(
        [sys.executable, "-m", "ruff", "format", "-q", *map(str, generated)], check=False
    )
    print("\n".join(str(p.relative_to(ROOT)) for p in generated))
    return 0


if __name__ == "__main__":
    sys.exit(main())
