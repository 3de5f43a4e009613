"""Readable names of the metric keys: every key the report shows has one, with its unit, and no two share one."""

from __future__ import annotations

import pytest

from hecktor_nnunet.demo.marks import PASS_MARKS
from hecktor_nnunet.evaluation.labels import format_number, label, p_equation, quantity
from hecktor_nnunet.evaluation.tasks import OUTCOME_TASKS, SEG_METRICS
from hecktor_nnunet.reporting.collect import PER_PATIENT_COLUMNS

SHOWN = [*SEG_METRICS, *(t.metric for t in OUTCOME_TASKS.values()), *PER_PATIENT_COLUMNS, *PASS_MARKS,
         "uno_c", "td_auc", "logrank_p", "auc", "sensitivity", "specificity", "n_patients", "n_events"]


def test_every_key_the_report_shows_is_named():
    unknown = [k for k in SHOWN if not quantity(k).known]
    assert unknown == []
    labels = [label(k) for k in dict.fromkeys(SHOWN)]
    assert len(set(labels)) == len(labels)  # no two keys read alike
    assert not [lab for lab in labels if "_" in lab]


@pytest.mark.parametrize("key, readable, digits", [
    ("gtvp_dice_mean", "GTVp Dice (mean)", 3),
    ("gtvp_hd95_median", "GTVp HD95 (median, mm)", 1),
    ("gtvn_dsc_agg", "GTVn aggregated Dice", 3),
    ("gtvn_true_ml", "GTVn true volume (mL)", 1),
    ("gtvn_tp", "GTVn lesions detected", None),
    ("rfs_c_index_predicted", "RFS Harrell's C-index (predicted masks)", 3),
    ("kept_fraction_min", "fraction kept (smallest)", 3),
])
def test_a_key_reads_as_region_measure_statistic_and_unit(key, readable, digits):
    q = quantity(key)
    assert (q.label, q.digits, q.known) == (readable, digits, True)


def test_unknown_keys_and_numbers():
    assert not quantity("gtvn_dice_mean_per_patient").known
    assert quantity("logrank_p").p_value and not quantity("uno_c").p_value
    shown = [format_number(v, 3) for v in (0.67060590, 1, None, float("inf"), True)]
    assert shown == ["0.671", "1.000", "–", "–", "yes"]
    assert [format_number(v, None) for v in (12, 4.2, "CHUM")] == ["12", "4.2", "CHUM"]
    assert p_equation(2e-9, "log-rank p") == "log-rank p < 0.001" and p_equation(0.1161) == "p = 0.116"
