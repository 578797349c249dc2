"""What the Lambda's Python may import, as a prelude for a fresh interpreter in a test.

``BLOCK_THIRD_PARTY`` is Python source: run first in a child interpreter (``python -c``), it
makes every import outside the standard library, ``algostack`` and what the Lambda runtime
ships (boto3 and its dependencies) raise ``ImportError``. Tests of the controller package
append what they check (the control modules import, the unpacked zip runs its handlers, the
sessions answer from the stdlib table).
"""

BLOCK_THIRD_PARTY = r"""
import importlib.abc, sys
ALLOWED = {"algostack", "boto3", "botocore", "jmespath", "dateutil", "urllib3", "s3transfer",
           "six"}
STDLIB = set(sys.stdlib_module_names)
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if top in STDLIB or top in ALLOWED or top.startswith("_"):
            return None
        raise ImportError(f"blocked third-party import: {name}")
sys.meta_path.insert(0, Block())
"""
