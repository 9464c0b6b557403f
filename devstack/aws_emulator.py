"""The local stack's AWS emulator: moto's server with one fix to its Route 53 change journal.

moto 5.2.5 refuses a ChangeResourceRecordSets CREATE equal to one in the hosted zone's change
journal while the name still has records, and checks that before the batch's own DELETEs apply.
The journal never forgets a CREATE, so on one emulator the second failover (or a failover after
a failback) fails with InvalidChangeBatch "Tried to create resource record set ... but it already
exists", although Route 53 accepts the batch: it deletes the record before creating it again.
The seed's UPSERTs only spare the first cycle (the failback re-creates records first UPSERTed).

The fix: a DELETE also drops from the journal the CREATEs of exactly the record it deletes, so
the journal's CREATEs are records that exist. moto's other checks stay (a DELETE must still match
a record as created). Production code is untouched: this runs only where the stack runs moto.
When moto fixes its check (upstream PR #9105), tests/test_aws_emulator.py's test of plain moto
fails, and this module can go back to being `moto_server`.

    python -m devstack.aws_emulator -H 127.0.0.1 -p 5000     (moto_server's arguments)
"""

from __future__ import annotations

import sys
from typing import Any

from moto.route53.models import ChangeList

_PATCHED = "_devstack_forgets_deleted_creates"


def forget_deleted_creates() -> None:
    """Patch moto's Route 53 change journal (idempotent)."""
    if getattr(ChangeList, _PATCHED, False):
        return
    journal = ChangeList.append

    def append(self: ChangeList, item: Any) -> None:
        journal(self, item)  # moto strips the name's final dot here, as in the CREATEs it keeps
        if item.get("Action") == "DELETE":
            created = {"Action": "CREATE", "ResourceRecordSet": item["ResourceRecordSet"]}
            self[:] = [change for change in self if change != created]

    ChangeList.append = append  # type: ignore[method-assign]
    setattr(ChangeList, _PATCHED, True)


def main(argv: list[str] | None = None) -> None:
    from moto.server import main as moto_server

    forget_deleted_creates()
    moto_server(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
