"""The directory as a file: ``fedbroker apply`` and ``fedbroker export``.

    desired = load_file("directory.yaml")       # checks all of it; DirectoryFileError lists why
    changes = plan(store, account, desired)      # what would change (nothing is written)
    apply(services, account, desired)            # make it so, as audited IAM calls
    data = export(store, account)                # the directory in the same format

The format is documented in docs/directory-file.md. Framework-free: the CLI only reads
options, calls these and prints.
"""

from fedbroker.iam.declarative.export import export
from fedbroker.iam.declarative.load import load_data, load_file, load_text
from fedbroker.iam.declarative.plan import Call, Change, Verb, plan
from fedbroker.iam.declarative.run import INVOKED_BY, ConcurrentModificationError, apply, execute
from fedbroker.iam.declarative.state import (
    FORMAT_VERSION,
    DesiredGroup,
    DesiredPolicy,
    DesiredRole,
    DesiredState,
    DesiredUser,
    DirectoryFileError,
    Document,
    Ref,
)
from fedbroker.iam.declarative.syntax import dump

__all__ = [
    "FORMAT_VERSION",
    "INVOKED_BY",
    "Call",
    "Change",
    "ConcurrentModificationError",
    "DesiredGroup",
    "DesiredPolicy",
    "DesiredRole",
    "DesiredState",
    "DesiredUser",
    "DirectoryFileError",
    "Document",
    "Ref",
    "Verb",
    "apply",
    "dump",
    "execute",
    "export",
    "load_data",
    "load_file",
    "load_text",
    "plan",
]
