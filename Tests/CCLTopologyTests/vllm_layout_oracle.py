"""Oracle for ParallelLayoutTests: vLLM 0.33.0's group construction
(vllm/distributed/parallel_state.py, initialize_model_parallel, non-elastic path), with numpy in
place of torch (same reshape/transpose semantics). Reads configs as JSON lines
[world, tp, pp, dp, pcp, dcp] on stdin, prints one JSON object of groups per line."""
import json
import sys

import numpy as np

for line in sys.stdin:
    world, tp, pp, dp, pcp, dcp = json.loads(line)
    all_ranks = np.arange(world).reshape(-1, dp, pp, pcp, tp)
    dcp_ranks = all_ranks.swapaxes(-1, -2) if dcp > 1 else all_ranks
    out = {
        "tp": all_ranks.reshape(-1, tp),
        "dcp": dcp_ranks.reshape(-1, dcp),
        "pcp": all_ranks.swapaxes(3, 4).reshape(-1, pcp),
        "pp": all_ranks.swapaxes(2, 4).reshape(-1, pp),
        "dp": all_ranks.swapaxes(1, 4).reshape(-1, dp),
        "ep": all_ranks.swapaxes(1, 2).reshape(-1, dp * pcp * tp),
    }
    print(json.dumps({k: v.tolist() for k, v in out.items()}), flush=True)
