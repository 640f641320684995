"""Cohorts of slides from a manifest: :func:`run_cohort` (Ray by default, or a plain loop).

Ray is imported only when the Ray engine runs (:mod:`nucleus_seg.cohort.ray_engine`).
"""
from .manifest import CohortSlide, Shard, read_manifest
from .runner import (CohortProgress, CohortReport, ModelLoader, SlideJob, run_cohort, run_job,
                     slide_jobs, summary_csv_name, write_summary_csv)

__all__ = ["CohortProgress", "CohortReport", "CohortSlide", "ModelLoader", "Shard", "SlideJob",
           "read_manifest", "run_cohort", "run_job", "slide_jobs", "summary_csv_name",
           "write_summary_csv"]
