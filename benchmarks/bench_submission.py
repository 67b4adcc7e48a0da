"""Benchmark (issue 15): the submission writers' CPU per dataset and format.

Reads the ADaM Parquet files of a finished analysis (``OUT/adam/<name>.parquet`` of ``mmtrial
analyze``) and times, for each dataset of ``mmtrial.submission.SUBMISSION_DATASETS``, its
submission frame (``submission_frame``), the XPT, the Dataset-JSON and then define.xml, in CPU
seconds of this process (``resource.getrusage``). The files go to a temporary folder, or to
``--keep DIR`` to compare two versions' files (creation times differ).

The Parquet round trip can change a few dtypes against the frames of a live analysis (text
columns come back as Arrow strings or categoricals), so figures differ slightly from the
writers' share of ``mmtrial analyze``; compare versions with this script on the same folder, in
alternating runs.

Usage: ``python benchmarks/bench_submission.py OUT/adam [--datasets adlb adsl] [--keep DIR]``.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
from pathlib import Path

import pandas as pd


def _cpu() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def main() -> None:
    from mmtrial.submission import SUBMISSION_DATASETS, parameters
    from mmtrial.submission.datasetjson import write_dataset_json
    from mmtrial.submission.define import WrittenDataset, write_define
    from mmtrial.submission.spec import load_spec, submission_frame
    from mmtrial.submission.xpt import write_xpt

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("adam", type=Path, help="folder with <name>.parquet (an analysis' OUT/adam)")
    p.add_argument("--datasets", nargs="*", default=list(SUBMISSION_DATASETS))
    p.add_argument("--keep", type=Path, help="write the files here (default: a temporary folder)")
    p.add_argument("--study", default="STUDY", help="study id written into the files")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep or Path(tmp)
        (out / "adam").mkdir(parents=True, exist_ok=True)
        spec, written = load_spec(), []
        total = {"frame": 0.0, "xpt": 0.0, "json": 0.0}
        for name in args.datasets:
            df = pd.read_parquet(args.adam / f"{name}.parquet")
            t0 = _cpu()
            frame, cols, ds = submission_frame(name, df, args.study, spec)
            t1 = _cpu()
            write_xpt(frame, cols, ds, out / "adam" / f"{name}.xpt")
            t2 = _cpu()
            write_dataset_json(frame, cols, ds, out / "adam" / f"{name}.json", study_oid=args.study,
                               created="2026-01-01T00:00:00")
            t3 = _cpu()
            written.append(WrittenDataset(spec=ds, columns=cols, xpt_name=f"{name}.xpt", records=len(frame),
                                          params=parameters(frame)))
            for k, v in zip(total, (t1 - t0, t2 - t1, t3 - t2), strict=True):
                total[k] += v
            print(f"{name:6s} {len(frame):9,d} rows x {len(cols):3d}: frame {t1 - t0:6.2f}  xpt {t2 - t1:6.2f}  "
                  f"json {t3 - t2:6.2f} s CPU", flush=True)
        t = _cpu()
        write_define(out / "define.xml", written, spec, study_id=args.study, study_title=args.study,
                     created="2026-01-01T00:00:00")
        print(f"define.xml {_cpu() - t:.2f} s; totals: " + ", ".join(f"{k} {v:.2f}" for k, v in total.items())
              + f"; all {sum(total.values()) + _cpu() - t:.2f} s CPU")


if __name__ == "__main__":
    main()
