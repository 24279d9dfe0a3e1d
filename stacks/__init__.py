"""CDK stacks of the FraudLab lab: wiring only, one stack per concern.

The CDK's Python library runs its constructs in a Node process (jsii); it uses the Node
package.json pins (node_modules/.bin/node) unless JSII_NODE says otherwise, so a synthesis
outside make (by hand, in a test) runs on the same supported Node as the CDK CLI.
"""
import os
from pathlib import Path

_PINNED_NODE = Path(__file__).resolve().parent.parent / "node_modules" / ".bin" / "node"
if _PINNED_NODE.exists():
    os.environ.setdefault("JSII_NODE", str(_PINNED_NODE))
