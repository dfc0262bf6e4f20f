"""The one default configuration of calibration and scoring.

``python -m irt fit``, ``evaluate`` and ``score``, the ``prepare`` function (and, through it,
its quality gate and monitoring checks, which calibrate with the run's settings) all start from
:data:`DEFAULTS`, so what a data scientist fits from a file is what production serves from the
same answers.  Each entry point reads the object when it runs (``defaults.DEFAULTS``, not a copy
taken at import), and ``irt fit --help`` prints the effective values.

Why these values (measured; the figures are in the README's "Defaults" section):

* **Priors on** - ``log a ~ N(0, 0.5^2)``, ``b ~ N(0, 2^2)``, for the 3PL also
  ``c ~ Beta(5, 17)``.  LMS logs are sparse: most items have few answers, and without priors EM
  chases the slopes and difficulties of nearly separable items for hundreds of cycles (no
  convergence in 500 cycles on any of the three public learning logs, ``|b|`` up to 54; with
  the priors 10-26 cycles).  On a dense design the priors change little: the LSAT tests pin
  R mirt's estimates with no priors, and with these priors every LSAT6/7 parameter moves by
  less than half its standard error.
* **Every answered item calibrated** (``min_answers_per_item`` 1): with the priors a rarely
  answered item is shrunk toward the population (or its skill) rather than left out, and the
  online AUC on ASSISTments 2009 falls as the minimum rises (0.754 at 1, 0.753 at 2, 0.747 at
  5, 0.731 at 10).
* **A skill prior whenever the log names skills** (``skill_prior``): an item with a skill has
  the difficulty prior ``b ~ N(mu_k, skill_difficulty_sd^2)`` around its skill's mean ``mu_k``
  (estimated, ``mu_k ~ prior_b``) instead of the population's ``prior_b``, so a rarely
  answered item is shrunk toward the items of its skill.  ``skill_difficulty_sd`` 1.0 is the
  value the learning-aware "skills" option measured best on ASSISTments 2009 (1.0-1.3; 0.6
  and 1.7 worse); on the simulated sparse log (within-skill SD 0.5) it lowers the RMSE of the
  difficulties of the items answered at most twice (README "Sparse logs and skills").
  Slopes keep the population prior: a skill mean of ``log a`` under the lognormal prior
  drifts toward 0 (the joint mode of the slopes and their mean is degenerate: each slope's
  mode sits ``sdlog^2`` below the mean, which then follows), as it did when tried.
* **Students with at least two answers** (``min_answers_per_student`` 2): a student with one
  answer carries almost no information about the item's parameters beyond the prior, and
  ``prepare`` has always dropped them.

* **The learning-aware options calibrated on at most 500,000 answers**
  (``learning_max_answers``; a deterministic sample of whole students, items outside it keep
  the plain fit).  Their EM costs O(answers x nodes) per E-step: on 10M simulated answers
  (``benchmarks/bench_learning_10m.py``, skills and pfa, on this shared 2-core machine) it
  took 210 s at a cap of 2,000,000 and 144 s at 1,000,000, over the 120 s target, and
  69 s at 500,000 (median of 3 runs, 38-119 s with the machine's load; peak RSS 1.06 GiB,
  most of it the 10M-answer log).  Logs under the cap (ASSISTments 2009: 217k
  training answers) are fitted whole.

To reproduce R mirt's default (maximum likelihood, no priors) use ``--no-priors`` in the CLI,
``PRIOR_A=none``/``PRIOR_B=none`` in ``prepare``, or ``Priors()`` in code; see
:meth:`Defaults.maximum_likelihood`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from irt.engine.model import MODEL_TYPES, ModelType

Pair = tuple[float, float]


@dataclass(frozen=True)
class Defaults:
    """Settings every entry point starts from.

    Attributes:
        model: model type, one of :data:`irt.engine.model.MODEL_TYPES`.
        prior_a: ``(meanlog, sdlog)`` of the lognormal slope prior (2PL/3PL slopes, the
            1PL's common slope, the Rasch model's latent SD), or ``None``.
        prior_b: ``(mean, sd)`` of the normal difficulty prior, or ``None``.
        prior_c: ``(alpha, beta)`` of the beta prior on the 3PL's guessing, or ``None``.
        min_answers_per_item: items with fewer answers are not calibrated.
        min_answers_per_student: students with fewer answers are not used to calibrate.
        quadrature_points: nodes of the calibration's quadrature on ``[-6, 6]``.
        tol: EM stops when no item parameter moves more than this in a cycle.
        max_iter: cap on EM cycles; a fit that reaches it is reported as not converged.
        min_slope: a fitted slope below this marks a non-discriminating item (left out).
        score_method: ability estimate of ``irt score`` and ``predict``: ``EAP`` or ``MAP``.
        options: learning-aware options (``()``: the plain model).
        recency_decay: weight per later answer of the ``recency`` option.
        pfa_window: answers in the recent window of the ``pfa`` covariates.
        skill_prior: with an item -> skill map (a skill column), the difficulty prior of an
            item with a skill is centred on its skill's estimated mean (needs ``prior_b``,
            the prior of the skill means; :mod:`irt.engine.calibrate`).
        skill_difficulty_sd: ``sigma_b``, SD of the difficulties around their skill's mean.
        pfa_beta_sd: SD of the normal prior on the ``pfa`` option's shared coefficients.
        learning_difficulty_sd: ``sigma_b`` of the learning-aware fit (option ``skills``):
            SD of the prior of the difficulties around their skill's mean (why 1.5:
            :class:`irt.engine.learning_fit.LearningConfig`).
        auto_validation_share: share of the training students ``auto`` validates on.
        auto_all_folds_below: when the hold-out split has fewer validation students than
            this, ``auto`` validates on every training student instead: about ``1 /
            auto_validation_share`` folds (5), each predicted by models fitted on the others.
        auto_noise_z: ``auto`` keeps plain unless an option set's validation gain exceeds
            this many standard errors (a normal's; with few validation students the t
            quantile of the same level, :func:`irt.engine.auto.noise_factor`).
        max_ece_over_plain: ``auto`` and the quality gate refuse an option set whose
            calibration error (ECE) exceeds the plain 2PL's by more than this.
        learning_max_answers: the learning-aware options are calibrated on at most this
            many training answers, a deterministic sample of whole students (``None``: all);
            items outside the sample keep the plain fit's parameters.
    """

    model: ModelType = "2pl"
    prior_a: Pair | None = (0.0, 0.5)
    prior_b: Pair | None = (0.0, 2.0)
    prior_c: Pair | None = (5.0, 17.0)
    min_answers_per_item: int = 1
    min_answers_per_student: int = 2
    quadrature_points: int = 41
    tol: float = 1e-4
    max_iter: int = 500
    min_slope: float = 0.05
    score_method: str = "EAP"
    options: tuple[str, ...] = ()
    recency_decay: float = 0.95
    pfa_window: int = 10
    skill_prior: bool = True
    skill_difficulty_sd: float = 1.0
    pfa_beta_sd: float = 1.0
    learning_difficulty_sd: float = 1.5
    auto_validation_share: float = 0.2
    auto_all_folds_below: int = 200
    auto_noise_z: float = 2.0
    max_ece_over_plain: float = 0.01
    learning_max_answers: int | None = 500_000

    def __post_init__(self) -> None:
        if self.model not in MODEL_TYPES:
            raise ValueError(f"model must be one of {', '.join(MODEL_TYPES)}")
        if self.min_answers_per_item < 1 or self.min_answers_per_student < 1:
            raise ValueError("minimum answers must be at least 1")
        if self.options and self.model != "2pl":
            raise ValueError("learning-aware options need the 2pl model")
        if not 0.0 < self.auto_validation_share < 1.0 or self.auto_all_folds_below < 0:
            raise ValueError("auto_validation_share must be in (0, 1) and "
                             "auto_all_folds_below at least 0")
        if self.learning_max_answers is not None and self.learning_max_answers < 1:
            raise ValueError("learning_max_answers must be at least 1 (or None: no cap)")
        if self.score_method not in ("EAP", "MAP"):
            raise ValueError("score_method must be EAP or MAP")
        if not self.skill_difficulty_sd > 0 or not self.learning_difficulty_sd > 0:
            raise ValueError("skill_difficulty_sd and learning_difficulty_sd must be positive")

    def maximum_likelihood(self) -> Defaults:
        """These settings without any prior: R mirt's default estimation."""
        return replace(self, prior_a=None, prior_b=None, prior_c=None)

    def _skill_prior_text(self) -> str:
        if not self.skill_prior:
            return "off"
        return (f"b ~ N(mu_skill, {self.skill_difficulty_sd:g}^2), mu_skill ~ the b prior "
                "(slopes: the population prior)")

    def describe(self) -> str:
        """One line per setting, for ``--help`` and the README."""
        def pair(p: Pair | None) -> str:
            return "none" if p is None else f"{p[0]:g},{p[1]:g}"

        return "\n".join([
            f"  model {self.model}; quadrature {self.quadrature_points} nodes on [-6, 6]; "
            f"EM tol {self.tol:g}, at most {self.max_iter} cycles",
            f"  priors: log a ~ N({pair(self.prior_a)}) [meanlog,sdlog], "
            f"b ~ N({pair(self.prior_b)}) [mean,sd], "
            f"3pl c ~ Beta({pair(self.prior_c)})",
            f"  items with >= {self.min_answers_per_item} answer(s) calibrated; students with "
            f">= {self.min_answers_per_student} answers used; slopes below "
            f"{self.min_slope:g} left out",
            f"  skill prior (with a skill column): {self._skill_prior_text()}",
            f"  scoring {self.score_method}; options "
            f"{','.join(self.options) or 'none (plain model)'}; recency decay "
            f"{self.recency_decay:g}; pfa window {self.pfa_window}, coefficients ~ "
            f"N(0,{self.pfa_beta_sd:g}^2); skills: b ~ N(mu_skill, "
            f"{self.learning_difficulty_sd:g}^2)",
            f"  options auto: validated on {self.auto_validation_share:.0%} of the training "
            f"students (on all of them, in {fold_count(self.auto_validation_share)} folds, "
            f"when that is fewer than {self.auto_all_folds_below}); kept only if the gain > "
            f"{self.auto_noise_z:g} x its standard error "
            f"(Student's t at that level with few validation students) "
            f"and ECE <= plain + {self.max_ece_over_plain:g}; options calibrated on "
            + ("all answers" if self.learning_max_answers is None else
               f"at most {self.learning_max_answers:,} answers (whole students)"),
        ])


#: At most this many folds when ``auto`` validates on every training student.
MAX_FOLDS = 10


def fold_count(share: float) -> int:
    """The folds of a small log's validation by ``auto``
    (:attr:`Defaults.auto_all_folds_below`): about ``1 / share`` (5 for the default 20 %),
    from 2 to :data:`MAX_FOLDS`."""
    return min(MAX_FOLDS, max(2, round(1.0 / share)))


#: The defaults.  Entry points read ``irt.engine.defaults.DEFAULTS`` when they run.
DEFAULTS = Defaults()
