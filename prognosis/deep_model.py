"""The deep prognosis model as an estimator: :class:`DeepPrognosisModel` (``--model deep``).

``fit(X, y)`` takes the tabular inputs ``X`` (the encoded ``CLIN_`` columns and the PET measures of
:mod:`~hecktor_nnunet.prognosis.deep_crops`, indexed by PatientID) and looks each patient's image up
in the ``crops`` store it was given; ``y`` is the task's target (structured (event, time) array for
rfs, 0/1 for hpv), as for every other model, so :func:`~hecktor_nnunet.prognosis.cv.cross_validate`
runs it on the same folds and writes the same report.

Inside ``fit`` (everything from the rows given, nothing else):

1. the tabular columns: missing values imputed with the training medians plus a missing indicator
   for every column with a gap; measures of volume and uptake ``log(1 + x)``; all standardised
   (:class:`TabularScaler`);
2. ``members`` networks (:class:`~hecktor_nnunet.prognosis.deep_net.PrognosisNet`), one per
   stratified inner fold: each starts as the penalised linear model of the tabular inputs fitted on
   its training folds (``baseline``; elastic-net Cox or logistic regression, as the clinical-only
   model), trains the network on top (random left-right flips, small CT and PET intensity jitter;
   AdamW) and stops early on its own fold's loss (``patience`` epochs without improvement; the best
   epoch's weights kept, epoch 0 = the linear model alone), so every training patient gets one
   out-of-fold output;
3. rfs: each member's risk standardised by its training patients' risks, the model's risk their mean;
   hpv: the mean probability, positive at the threshold that maximises balanced accuracy on the
   out-of-fold probabilities (:func:`~hecktor_nnunet.metrics.classification.best_threshold`, as the
   other HPV models do).

Fixed seeds: on the CPU two fits with one ``random_state`` and one thread count give the same
weights; on CUDA, cuDNN's kernels may differ in the last bits.

Torch is imported when a model is fitted or applied, not with this module: the command line reads
the defaults below without paying for it.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.model_selection import StratifiedKFold, StratifiedShuffleSplit
from sklearn.utils.validation import check_is_fitted

from hecktor_nnunet.metrics.classification import best_threshold
from hecktor_nnunet.prognosis.estimators import check_binary_target, check_survival_target
from hecktor_nnunet.prognosis.families import CLINICAL_FAMILY, default_params
from hecktor_nnunet.prognosis.selection import check_learnable, stratify_labels

log = logging.getLogger(__name__)

DEEP = "deep"
#: Tabular columns transformed ``log(1 + x)`` before standardising: the PET and lesion measures.
LOG_PREFIXES = ("PET_", "MASK_")


class TabularScaler:
    """Median imputation with missing indicators, ``log(1 + x)`` of measures, standardisation.

    Plain numbers only (:meth:`to_dict` / :meth:`from_dict`), so a model folder's ``prognosis.json``
    holds them readably.
    """

    def fit(self, X: pd.DataFrame) -> "TabularScaler":
        values = X.to_numpy(dtype=float)
        self.columns = [str(c) for c in X.columns]
        self.log_columns = [c for c in self.columns if c.startswith(LOG_PREFIXES)]
        with np.errstate(all="ignore"):
            med = np.nanmedian(values, axis=0) if len(values) else np.zeros(len(self.columns))
        self.medians = [0.0 if not np.isfinite(m) else float(m) for m in np.atleast_1d(med)]
        self.indicators = [c for c, gap in zip(self.columns, np.isnan(values).any(axis=0)) if gap]
        z = self._raw(X)
        self.means = z.mean(axis=0).tolist()
        sd = z.std(axis=0)
        self.sds = np.where(sd > 1e-8, sd, 1.0).tolist()
        return self

    def _raw(self, X: pd.DataFrame) -> np.ndarray:
        missing = [c for c in self.columns if c not in X.columns]
        if missing:
            raise ValueError(f"inputs lack column(s) the model was trained with: {missing[:5]}")
        values = X[self.columns].to_numpy(dtype=float).copy()
        gaps = np.isnan(values)
        values[gaps] = np.take(np.asarray(self.medians), np.nonzero(gaps)[1])
        logs = [self.columns.index(c) for c in self.log_columns]
        values[:, logs] = np.log1p(np.clip(values[:, logs], 0, None))
        flags = gaps[:, [self.columns.index(c) for c in self.indicators]].astype(float)
        return np.hstack([values, flags])

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        """Float32 array (n, columns + indicators)."""
        return ((self._raw(X) - np.asarray(self.means)) / np.asarray(self.sds)).astype(np.float32)

    @property
    def n_outputs(self) -> int:
        return len(self.columns) + len(self.indicators)

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("columns", "log_columns", "medians", "indicators", "means", "sds")}

    @classmethod
    def from_dict(cls, d: dict) -> "TabularScaler":
        out = cls()
        for k, v in d.items():
            setattr(out, k, list(v))
        return out


class DeepPrognosisModel(BaseEstimator):
    """PET/CT crops + clinical vector -> RFS risk or HPV probability, an ensemble of fold networks.

    Parameters
    ----------
    task : {"rfs", "hpv"}
    crops : Mapping, optional
        PatientID -> :class:`~hecktor_nnunet.prognosis.deep_crops.Crop` (a
        :class:`~hecktor_nnunet.prognosis.deep_crops.CropStore`): where ``fit`` and ``predict`` find
        the images of the rows of ``X``. Not saved with the model.
    width : int
        Channels of the network's stem (:class:`~hecktor_nnunet.prognosis.deep_net.PrognosisNet`).
    hidden : int
        Units of the tabular MLP and of the penultimate layer.
    dropout : float
    epochs : int
        Most epochs per member.
    patience : int
        Epochs without a better validation loss before a member stops.
    batch_size : int
    learning_rate, weight_decay : float
        AdamW settings.
    members : int
        Inner folds, one network each (1: one network, a 20% validation split).
    focal_gamma : float
        hpv: 0 for class-weighted cross-entropy, > 0 for focal loss.
    augment : bool
        Random left-right flips and intensity jitter while training.
    baseline : bool
        Fix the network's linear term to the penalised linear model of the tabular inputs fitted on
        each member's training patients (the clinical family's penalty), so the network learns what that
        model misses (and a member whose network never helps on its validation fold stays that model).
        False: the linear term starts at zero and is trained with the rest.
    device : str
        ``"cpu"``, ``"cuda"`` or ``"auto"``.
    n_jobs : int
        Torch threads on the CPU (default 1: on a shared or busy machine more threads can be several
        times slower; 0 leaves torch's setting).
    random_state : int

    Attributes
    ----------
    scaler_ : TabularScaler
    nets_ : list of PrognosisNet
        The members (on the CPU, eval mode).
    members_ : list of dict
        Per member: patients trained and validated on, epochs run, best epoch, its validation loss,
        seconds, and (rfs) the centre and scale of its training risks.
    threshold_ : float or None
        hpv: predict 1 when the probability reaches it.
    oof_score_ : ndarray
        The out-of-fold output of every training patient (risk or probability).
    feature_names_in_ : list of str
    """

    def __init__(self, *, task: str = "rfs", crops=None, width: int = 8, hidden: int = 32, dropout: float = 0.3,
                 epochs: int = 40, patience: int = 8, batch_size: int = 16, learning_rate: float = 5e-3,
                 weight_decay: float = 1e-3, members: int = 3, focal_gamma: float = 0.0, augment: bool = True,
                 baseline: bool = True, device: str = "cpu", n_jobs: int = 1, random_state: int = 0):
        self.task = task
        self.crops = crops
        self.width = width
        self.hidden = hidden
        self.dropout = dropout
        self.epochs = epochs
        self.patience = patience
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.members = members
        self.focal_gamma = focal_gamma
        self.augment = augment
        self.baseline = baseline
        self.device = device
        self.n_jobs = n_jobs
        self.random_state = random_state

    # -- inputs -------------------------------------------------------------------------------
    def _images(self, X: pd.DataFrame) -> np.ndarray:
        if self.crops is None:
            raise ValueError("DeepPrognosisModel needs crops= (a CropStore) to find the patients' images")
        missing = [str(i) for i in X.index if i not in self.crops]
        if missing:
            raise KeyError(f"no crop for patient(s) {', '.join(missing[:10])}"
                           + (f" (+{len(missing) - 10})" if len(missing) > 10 else ""))
        images = np.stack([self.crops[i].image for i in X.index])
        if hasattr(self, "crop_size_") and images.shape[-1] != self.crop_size_:
            raise ValueError(f"crops are {images.shape[-1]} voxels a side, the network was trained on "
                             f"{self.crop_size_}")
        return images

    def _net(self, n_tabular: int, crop_size: int):
        from hecktor_nnunet.prognosis.deep_net import PrognosisNet

        return PrognosisNet(in_channels=4, crop_size=crop_size, n_tabular=n_tabular, width=self.width,
                            hidden=self.hidden, dropout=self.dropout)

    def _loss(self, y: np.ndarray, train_rows: np.ndarray):
        """``loss(output, rows)`` of the task on the targets ``y`` (classes weighted on ``train_rows``)."""
        import torch

        from hecktor_nnunet.prognosis.deep_net import binary_loss, cox_loss

        if self.task == "rfs":
            event, time_ = check_survival_target(y)
            t, e = torch.from_numpy(time_.astype(np.float32)), torch.from_numpy(event.astype(np.float32))
            return lambda out, rows: cox_loss(out, t[rows].to(out.device), e[rows].to(out.device))
        labels = check_binary_target(y)
        pos_weight = float((labels[train_rows] == 0).sum() / max(int(labels[train_rows].sum()), 1))
        lab = torch.from_numpy(labels.astype(np.float32))
        return lambda out, rows: binary_loss(out, lab[rows].to(out.device), pos_weight, self.focal_gamma)

    def _baseline(self, tab: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
        """Weights and intercept of the penalised linear model of the tabular inputs (the clinical family's
        penalty: elastic-net Cox for rfs, L2 logistic regression with balanced classes for hpv)."""
        params = default_params(self.task, CLINICAL_FAMILY[self.task])
        if self.task == "rfs":
            from sksurv.linear_model import CoxnetSurvivalAnalysis

            cox = CoxnetSurvivalAnalysis(alphas=[params["alpha"]], l1_ratio=0.5, max_iter=100000).fit(tab, y)
            return cox.coef_[:, 0], 0.0
        from sklearn.linear_model import LogisticRegression

        logit = LogisticRegression(C=params["C"], class_weight="balanced", max_iter=5000).fit(tab, y.astype(int))
        return logit.coef_[0], float(logit.intercept_[0])

    def _splits(self, y) -> list[tuple[np.ndarray, np.ndarray]]:
        labels = stratify_labels(self.task, y)
        if self.members < 1:
            raise ValueError(f"members must be at least 1, got {self.members}")
        if self.members == 1:
            sss = StratifiedShuffleSplit(1, test_size=0.2, random_state=self.random_state)
            return list(sss.split(labels, labels))
        n = min(self.members, int(np.bincount(labels).min()))
        if n < 2:
            raise ValueError(f"too few patients in the smaller {self.task} class for {self.members} members")
        return list(StratifiedKFold(n, shuffle=True, random_state=self.random_state).split(labels, labels))

    # -- training -----------------------------------------------------------------------------
    def fit(self, X: pd.DataFrame, y) -> "DeepPrognosisModel":
        """Fit the members on the rows of ``X`` (PatientID index; images from ``crops``) and ``y``."""
        import torch

        from hecktor_nnunet.prognosis.deep_net import (n_parameters, network_outputs, resolve_device,
                                                       torch_threads, train_network)

        if self.task not in ("rfs", "hpv"):
            raise ValueError(f"unknown task {self.task!r}; choose rfs or hpv")
        if not isinstance(X, pd.DataFrame):
            raise TypeError("DeepPrognosisModel needs a DataFrame indexed by PatientID")
        check_learnable(self.task, y)
        y = np.asarray(y)
        self.feature_names_in_ = [str(c) for c in X.columns]
        images = torch.from_numpy(self._images(X))
        self.crop_size_ = int(images.shape[-1])
        self.scaler_ = TabularScaler().fit(X)
        tab = torch.from_numpy(self.scaler_.transform(X))
        dev, cpu = resolve_device(self.device), torch.device("cpu")
        self.nets_, self.members_ = [], []
        oof = np.full(len(X), np.nan)
        with torch_threads(self.n_jobs), torch.random.fork_rng(devices=[dev.index or 0] if dev.type == "cuda" else []):
            for k, (tr, va) in enumerate(self._splits(y)):
                seed = int(self.random_state) * 1000 + k
                torch.manual_seed(seed)  # initial weights and dropout
                net = self._net(tab.shape[1], self.crop_size_)
                if self.baseline and tab.shape[1]:
                    net.set_baseline(*self._baseline(tab.numpy()[tr], y[tr]))
                net, info = train_network(
                    net, images, tab, self._loss(y, tr), tr, va,
                    epochs=self.epochs, patience=self.patience, batch_size=self.batch_size,
                    learning_rate=self.learning_rate, weight_decay=self.weight_decay, augmentation=self.augment,
                    seed=seed, device=dev)
                raw_tr = network_outputs(net.to(dev), images[tr], tab[tr], dev)
                raw_va = network_outputs(net, images[va], tab[va], dev)
                net = net.to(cpu)
                if self.task == "rfs":
                    info["centre"], info["scale"] = float(raw_tr.mean()), float(max(raw_tr.std(), 1e-6))
                    oof[va] = (raw_va - info["centre"]) / info["scale"]
                else:
                    oof[va] = 1 / (1 + np.exp(-raw_va))
                log.debug("%s member %d: best epoch %d of %d, validation loss %.4f", self.task, k,
                          info["best_epoch"], info["epochs_run"], info["validation_loss"])
                self.nets_.append(net)
                self.members_.append({"member": k, **info})
        self.oof_score_ = oof
        self.threshold_ = None
        if self.task == "hpv":
            seen = ~np.isnan(oof)
            self.threshold_ = best_threshold(y[seen].astype(int), oof[seen])
        self.n_parameters_ = n_parameters(self.nets_[0])
        return self

    # -- outputs ------------------------------------------------------------------------------
    def _member_outputs(self, X: pd.DataFrame, embed: bool = False) -> list[np.ndarray]:
        import torch

        from hecktor_nnunet.prognosis.deep_net import network_outputs, resolve_device, torch_threads

        check_is_fitted(self, "nets_")
        images = torch.from_numpy(self._images(X))
        tab = torch.from_numpy(self.scaler_.transform(X[self.feature_names_in_]))
        dev, out = resolve_device(self.device), []
        with torch_threads(self.n_jobs):
            for net in self.nets_:
                out.append(network_outputs(net.to(dev), images, tab, dev, embed))
                net.to("cpu")
        return out

    def decision_score(self, X: pd.DataFrame) -> np.ndarray:
        """The continuous output: risk (rfs; mean of the members' standardised risks) or P(HPV+) (hpv)."""
        raw = self._member_outputs(X)
        if self.task == "rfs":
            return np.mean([(r - m["centre"]) / m["scale"] for r, m in zip(raw, self.members_)], axis=0)
        return np.mean([1 / (1 + np.exp(-r)) for r in raw], axis=0)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """rfs: risk (higher = earlier relapse); hpv: hard 0/1 labels."""
        score = self.decision_score(X)
        return score if self.task == "rfs" else (score >= self.threshold_).astype(int)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """hpv only: probabilities (n, 2) of HPV negative / positive."""
        if self.task != "hpv":
            raise AttributeError("predict_proba is only defined for the hpv task")
        p = self.decision_score(X)
        return np.column_stack([1 - p, p])

    def embed(self, X: pd.DataFrame) -> pd.DataFrame:
        """The penultimate features of every member and the model's output, indexed like ``X``.

        Columns ``deep_m<k>_<j>`` (member ``k``, unit ``j``) and ``deep_score`` (risk or P(HPV+)).
        """
        feats = self._member_outputs(X, embed=True)
        cols = {f"deep_m{k}_{j:02d}": f[:, j] for k, f in enumerate(feats) for j in range(f.shape[1])}
        return pd.DataFrame({**cols, "deep_score": self.decision_score(X)}, index=X.index)

    # -- what cross_validate and the model folder read -----------------------------------------
    @property
    def selected_features_(self) -> list[str]:
        check_is_fitted(self, "nets_")
        return list(self.feature_names_in_)

    @property
    def chosen_(self) -> dict:
        return {"model": DEEP, "k_features": len(getattr(self, "feature_names_in_", []))}

    @property
    def best_params_(self) -> dict:
        return {}

    @property
    def search_(self) -> list[dict]:
        """Per member what its training did (epochs, best epoch, validation loss)."""
        return [{k: v for k, v in m.items() if k != "validation_history"} for m in getattr(self, "members_", [])]

    def settings(self) -> dict:
        """The settings as plain values (``crops`` left out)."""
        return {k: v for k, v in self.get_params().items() if k != "crops"}
