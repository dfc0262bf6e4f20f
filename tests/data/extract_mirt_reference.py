"""Write ``mirt_diagnostics_reference.json``: the R mirt values the diagnostics tests pin.

Run once by hand (not by the tests, which read only the subset it writes)::

    python tests/data/extract_mirt_reference.py /work/shared/datasets

It copies, unchanged, the fields listed below from each ``<dataset>/mirt_reference.json``
(mirt 1.45.1; see ``/work/shared/datasets/MIRT_REFERENCE.md`` and ``SOURCE.md`` here) and
records each file's SHA-256.  Numbers stay at full double precision; ``"Inf"``/``"-Inf"``/
``"NaN"`` strings and ``null`` (NA) are kept as they are.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

DATASETS = ("lsat7", "lsat6", "deayala", "sat12", "verbagg")
OUT = Path(__file__).with_name("mirt_diagnostics_reference.json")


def _model(m: dict) -> dict:
    itemfit = m["itemfit"]
    out = {
        "parameters": {"a": m["parameters"]["IRT"]["est"]["a"],
                       "b": m["parameters"]["IRT"]["est"]["b"],
                       "latent_var": m["parameters"]["latent"]["var"]},
        "fit": {k: m["fit"][k] for k in ("logLik", "AIC", "BIC", "n_estimated_parameters")},
        "fscores_patterns": {k: m["fscores_patterns"][k] for k in ("EAP", "MAP", "ML", "WLE")},
        "S_X2": itemfit["S_X2"],
        "infit": itemfit["infit"],
        "Zh": itemfit["Zh"],
        "M2": m["M2"],
        "personfit": {"first20_rows": m["personfit"]["first20_rows"],
                      "Zh_summary": m["personfit"]["Zh_summary"],
                      "Zh_sd": m["personfit"]["Zh_sd"]},
        "Q3": m["residuals"]["Q3"]["values"],
        "LD": m["residuals"]["LD"]["values"],
        "LD_df_p": m["residuals"]["LD_df_p"]["values"],
        "reliability": {k: v for k, v in m["reliability"].items() if k != "note"},
    }
    out["fscores_patterns"]["patterns"] = m["fscores_patterns"]["patterns"]["values"]
    if "X2_G2_extra" in itemfit:
        out["X2"] = {k: itemfit["X2_G2_extra"][k] for k in ("X2", "df.X2", "p.X2", "RMSEA.X2")}
    if "M2_null_model_extra" in m:
        out["M2_null"] = {k: v for k, v in m["M2_null_model_extra"].items() if k != "note"}
    return out


def main(root: str) -> int:
    doc: dict = {"source": "R mirt 1.45.1 (github.com/cran/mirt commit "
                 "6665574afa7be2c24471ee102cb0c218e480b119), values copied unchanged from "
                 "/work/shared/datasets/<dataset>/mirt_reference.json",
                 "sha256": {}, "datasets": {}}
    for name in DATASETS:
        path = Path(root) / name / "mirt_reference.json"
        raw = path.read_bytes()
        doc["sha256"][name] = hashlib.sha256(raw).hexdigest()
        ref = json.loads(raw)
        entry = {"item_names": ref["data"]["item_names"], "N": ref["data"]["N"],
                 "models": {k: _model(v) for k, v in ref["models"].items()}}
        if "anova_Rasch_vs_2PL" in ref:
            entry["anova_Rasch_vs_2PL"] = ref["anova_Rasch_vs_2PL"]
        doc["datasets"][name] = entry
    OUT.write_text(json.dumps(doc, indent=None, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "/work/shared/datasets"))
