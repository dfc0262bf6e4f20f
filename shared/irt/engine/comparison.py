"""Compare two calibrated banks on the same answers: likelihood, AIC, BIC, the
likelihood-ratio test of nested model types, and online prediction quality.

numpy and scipy only, no I/O.  Both banks are scored on the answers to the items that both
know (the others are left out and counted), so that the figures are comparable:

* marginal log-likelihood ``l`` on :func:`irt.engine.fitdata.marginal_grid` (61 nodes on
  ``[-6, 6]``, each bank's own latent SD), ``k`` free parameters over the items used
  (:func:`irt.engine.fitdata.parameter_count`), ``AIC = -2 l + 2 k``,
  ``BIC = -2 l + k log N`` with ``N`` students (R mirt's ``anova``);
* the likelihood-ratio test of :func:`irt.engine.globalfit.likelihood_ratio_test` when the
  model types nest (Rasch = 1PL < 2PL < 3PL).  It assumes maximum-likelihood fits to these
  same answers: banks calibrated with priors, or on other answers, make it approximate, and
  the result says so;
* online AUC, log-loss, Brier score and ECE from :func:`irt.engine.evaluate.evaluate`: every
  answer predicted from the same student's earlier answers only (in ``order``), as
  ``predict`` is used.  On the answers a bank was calibrated on these are in-sample; pass
  held-out students for an honest comparison.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from irt.engine.evaluate import evaluate
from irt.engine.fitdata import marginal_loglik, parameter_count
from irt.engine.globalfit import (
    InformationCriteria,
    LikelihoodRatioTest,
    information_criteria,
    likelihood_ratio_test,
)
from irt.engine.model import ItemModel
from irt.engine.responses import Responses


def json_ready(doc: Any) -> Any:
    """``doc`` (dicts and lists, nested) with every non-finite float - an undefined metric -
    as ``None``, which JSON writes as ``null``."""
    if isinstance(doc, dict):
        return {k: json_ready(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [json_ready(v) for v in doc]
    if isinstance(doc, float) and not math.isfinite(doc):
        return None
    return doc

@dataclass(frozen=True)
class ModelSummary:
    """One bank's figures on the common answers.

    Attributes:
        label: a name for the bank (e.g. its file).
        model_type: ``rasch``, ``1pl``, ``2pl`` or ``3pl``.
        n_items: items used (answered, known to both banks).
        criteria: log-likelihood, parameters, AIC, BIC.
        priors: whether the bank was calibrated with priors (MAP estimates).
        online: online evaluation metrics (``None`` when not run).
    """

    label: str
    model_type: str
    n_items: int
    criteria: InformationCriteria
    priors: bool
    online: dict[str, float | int] | None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["criteria"] = self.criteria.to_dict()
        return out


@dataclass
class Comparison:
    """Attributes:
        models: the two banks' summaries (in the order given).
        lrt: the likelihood-ratio test (``None`` when the types do not nest).
        n_students, n_answers: the common answers.
        n_answers_left_out: answers on items one of the banks does not know.
        notes: caveats, in words.
    """

    models: list[ModelSummary]
    lrt: LikelihoodRatioTest | None
    n_students: int
    n_answers: int
    n_answers_left_out: int
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return json_ready({"models": [m.to_dict() for m in self.models],
                      "lrt": self.lrt.to_dict() if self.lrt is not None else None,
                      "n_students": self.n_students, "n_answers": self.n_answers,
                      "n_answers_left_out": self.n_answers_left_out, "notes": self.notes})


def _uses_priors(model: ItemModel) -> bool:
    return any(v is not None for v in model.priors.values())


def compare(model_a: ItemModel, model_b: ItemModel, responses: Responses, *,
            labels: tuple[str, str] = ("A", "B"), order: np.ndarray | None = None,
            online: bool = True, n_points: int = 61) -> Comparison:
    """Compare two banks on ``responses`` (module docstring).

    Args:
        model_a, model_b: calibrated banks.
        responses: answers, at most one per student-item pair.
        labels: names of the two banks in the result.
        order: float array of shape ``(n_answers,)``, default=None: each answer's position in
            its student's sequence (e.g. ``answered_at``); ``None``: the order of
            ``responses``.
        online: run the online evaluation.
        n_points: marginal quadrature nodes.

    Raises:
        ValueError: if no answer is on an item both banks know.
    """
    ids = list(responses.item_ids)
    pos_a = model_a.positions(ids)[responses.item]
    pos_b = model_b.positions(ids)[responses.item]
    keep = (pos_a >= 0) & (pos_b >= 0)
    if not keep.any():
        raise ValueError("no answer is on an item that both models know")
    used_students, student = np.unique(responses.student[keep], return_inverse=True)
    n_students = used_students.shape[0]
    y = responses.correct[keep].astype(np.int8)
    notes: list[str] = []
    summaries = []
    for label, model, pos in ((labels[0], model_a, pos_a[keep]), (labels[1], model_b,
                                                                   pos_b[keep])):
        n_items = int(np.unique(pos).shape[0])
        ll = marginal_loglik(model, student, pos, y, n_students, n_points=n_points)
        criteria = information_criteria(ll, parameter_count(model.model_type, n_items),
                                        n_students)
        metrics = None
        if online:
            seq = np.arange(student.shape[0], dtype=float) if order is None else np.asarray(
                order, dtype=float)[keep]
            rows = np.lexsort((np.arange(student.shape[0]), seq, student))
            item_ids = [model.item_ids[k] for k in pos[rows].tolist()]
            report, _ = evaluate(model, student[rows], item_ids, y[rows])
            metrics = {k: v for k, v in report.to_dict().items()
                       if k in ("n_predictions", "auc", "log_loss", "brier", "ece",
                                "mean_probability", "mean_correct")}
        summaries.append(ModelSummary(label, model.model_type, n_items, criteria,
                                      _uses_priors(model), metrics))
    a, b = summaries
    lrt = None
    try:
        lrt = likelihood_ratio_test(a.model_type, a.criteria.log_likelihood,
                                    a.criteria.n_parameters, b.model_type,
                                    b.criteria.log_likelihood, b.criteria.n_parameters)
    except ValueError as exc:
        notes.append(f"no likelihood-ratio test: {exc}")
    if lrt is not None and lrt.df > 0 and (a.priors or b.priors):
        notes.append("a bank was calibrated with priors (MAP estimates): the likelihood-ratio "
                     "test's chi-squared reference is approximate")
    if lrt is not None and lrt.df > 0 and lrt.x2 < 0:
        notes.append("the larger model has the lower log-likelihood: the two banks were not "
                     "both maximum-likelihood fits to these answers")
    n_left = int(np.count_nonzero(~keep))
    if n_left:
        notes.append(f"{n_left} answers on items that one of the banks does not know were "
                     "left out")
    if online:
        notes.append("online metrics predict each answer from the student's earlier answers; "
                     "they are in-sample for answers a bank was calibrated on")
    return Comparison(models=[a, b], lrt=lrt, n_students=n_students,
                      n_answers=int(student.shape[0]), n_answers_left_out=n_left, notes=notes)
