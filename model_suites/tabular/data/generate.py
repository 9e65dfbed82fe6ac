"""Generate the tabular suite's datasets (seeded, numpy only). Run: python model_suites/tabular/data/generate.py

Both tables are synthetic, made here from documented rules (CC0): nothing is downloaded.

* adult_like.csv: 1,500 rows in the shape of UCI Adult: age and hours per week (numeric),
  education, occupation, sex (discrete) and income (<=50K / >50K), with real dependencies:
  income rises with education, hours and age; occupation depends on education.
* ehr_binary.csv: 1,500 patients x 24 binary diagnosis codes, sparse like real EHR data, with
  three comorbidity clusters (metabolic, cardiac, respiratory) driven by latent conditions.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROWS = 1500


def adult_like(rng: np.random.Generator) -> tuple[list[str], list[list[object]]]:
    education = ["HS-grad", "Some-college", "Bachelors", "Masters", "Doctorate"]
    occupations = ["Service", "Craft-repair", "Sales", "Adm-clerical", "Tech-support", "Exec-managerial"]
    rows: list[list[object]] = []
    for _ in range(ROWS):
        edu = int(rng.choice(5, p=[0.35, 0.25, 0.22, 0.13, 0.05]))
        age = int(np.clip(rng.normal(38 + 2.5 * edu, 11), 18, 80))
        hours = int(np.clip(rng.normal(36 + 2.0 * edu, 9), 5, 90))
        occ_p = np.array([6 - edu, 5 - edu, 3, 3, 1 + edu, 1 + 2 * edu], dtype=float).clip(0.3)
        occ = int(rng.choice(6, p=occ_p / occ_p.sum()))
        sex = "Male" if rng.random() < 0.6 else "Female"
        score = -4.2 + 0.75 * edu + 0.045 * (hours - 40) + 0.035 * (age - 38) + (0.5 if occ == 5 else 0.0)
        income = ">50K" if rng.random() < 1 / (1 + np.exp(-score)) else "<=50K"
        rows.append([age, education[edu], occupations[occ], hours, sex, income])
    return ["age", "education", "occupation", "hours_per_week", "sex", "income"], rows


def ehr_binary(rng: np.random.Generator) -> tuple[list[str], list[list[object]]]:
    clusters = {
        "metabolic": ["E11_diabetes", "E78_hyperlipidemia", "E66_obesity", "I10_hypertension", "N18_ckd", "E03_hypothyroid"],
        "cardiac": ["I25_ischemic_hd", "I48_afib", "I50_heart_failure", "I63_stroke", "I73_pvd", "Z95_cardiac_implant"],
        "respiratory": ["J44_copd", "J45_asthma", "J18_pneumonia", "J96_resp_failure", "F17_nicotine", "G47_sleep_apnea"],
    }
    other = ["F32_depression", "M54_back_pain", "K21_gerd", "M17_knee_oa", "H40_glaucoma", "L40_psoriasis"]
    names = [c for codes in clusters.values() for c in codes] + other
    rows: list[list[object]] = []
    for _ in range(ROWS):
        metabolic = rng.random() < 0.25
        cardiac = rng.random() < (0.35 if metabolic else 0.08)  # metabolic disease raises cardiac risk
        respiratory = rng.random() < 0.15
        row: list[object] = []
        for condition, codes in zip((metabolic, cardiac, respiratory), clusters.values(), strict=True):
            for rank in range(len(codes)):
                p = (0.7 - 0.09 * rank) if condition else 0.02
                row.append(int(rng.random() < p))
        row += [int(rng.random() < p) for p in (0.08, 0.12, 0.1, 0.06, 0.03, 0.02)]
        rows.append(row)
    return names, rows


def main() -> None:
    rng = np.random.default_rng(20241122)
    for name, make in (("adult_like.csv", adult_like), ("ehr_binary.csv", ehr_binary)):
        header, rows = make(rng)
        with open(HERE / name, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            writer.writerows(rows)
        print(f"wrote {name}: {len(rows)} rows x {len(header)} columns")


if __name__ == "__main__":
    main()
