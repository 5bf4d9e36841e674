#!/usr/bin/env python3
"""crmcube mine clv vs the Python `lifetimes` package on the same transaction log.

Simulates N customers' daily transactions from BG/NBD purchases and Gamma-Gamma
spend (fixed seed), writes them as CSV, then times

  * crmcube: `crmcube mine clv --transactions log.csv --time-unit days ...`
    (the whole command: reading the CSV, summarising, fitting BG/NBD and
    Gamma-Gamma, scoring every customer, writing predictions), and
  * lifetimes: summary_data_from_transaction_data + BetaGeoFitter.fit +
    GammaGammaFitter.fit + customer_lifetime_value (reading the CSV with pandas
    included),

and prints both timings, their ratio, and the relative parameter differences.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def simulate(n, seed, path):
    """BG/NBD purchases (per day) with Gamma-Gamma amounts; first purchases spread
    over a year, observation ends 1.5 years after the start."""
    rng = np.random.default_rng(seed)
    r, alpha, a, b = 0.243, 4.414 * 7, 0.793, 2.426  # CDNOW, alpha per day
    p, q, gamma = 6.25, 3.74, 15.44
    end = 546
    start = np.datetime64("2024-01-01")
    first = rng.integers(0, 365, n)
    lam = rng.gamma(r, 1 / alpha, n)
    drop = rng.beta(a, b, n)
    nu = rng.gamma(q, 1 / gamma, n)
    rows = []
    for i in range(n):
        t = float(first[i])
        days = [int(t)]
        while True:
            if rng.random() < drop[i] and len(days) > 1:
                break
            t += rng.exponential(1 / lam[i])
            if t > end:
                break
            days.append(int(t))
        amounts = rng.gamma(p, 1 / nu[i], len(days))
        for d, m in zip(days, amounts):
            rows.append((i, d, m))
    with open(path, "w") as f:
        f.write("customer,date,amount\n")
        for i, d, m in rows:
            f.write(f"C{i:08d},{start + np.timedelta64(d, 'D')},{m:.2f}\n")
    return str(start + np.timedelta64(end, "D")), len(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--workdir", default="/tmp/crmcube-clv-bench")
    ap.add_argument(
        "--binary",
        default=os.environ.get(
            "CRMCUBE_BIN", str(Path.home() / ".cache/crmcube-target/release/crmcube")
        ),
    )
    ap.add_argument("--json", help="also write the measurements as JSON")
    args = ap.parse_args()

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    log = work / "transactions.csv"
    t0 = time.perf_counter()
    end, nrows = simulate(args.customers, args.seed, log)
    print(f"simulated {args.customers:,} customers, {nrows:,} rows in "
          f"{time.perf_counter() - t0:.1f} s; observation ends {end}", file=sys.stderr)

    # crmcube
    params = work / "crmcube_params.json"
    cmd = [
        args.binary, "--quiet", "mine", "clv", "--transactions", str(log),
        "--customer-col", "customer", "--date-col", "date", "--amount-col", "amount",
        "--as-of", end, "--time-unit", "days", "--horizon-months", "12",
        "--discount-rate", "0.01", "--params", str(params),
        "--output", str(work / "crmcube_predictions.csv"),
    ]
    t0 = time.perf_counter()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    t_crm = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_crm = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    cp = json.loads(params.read_text())

    # lifetimes
    import pandas as pd
    from lifetimes import BetaGeoFitter, GammaGammaFitter
    from lifetimes.utils import summary_data_from_transaction_data

    t0 = time.perf_counter()
    c0 = time.process_time()
    df = pd.read_csv(log, parse_dates=["date"])
    summ = summary_data_from_transaction_data(
        df, "customer", "date", monetary_value_col="amount",
        observation_period_end=end, freq="D",
    )
    t_summary = time.perf_counter() - t0
    t1 = time.perf_counter()
    bgf = BetaGeoFitter(penalizer_coef=0.0)
    bgf.fit(summ["frequency"], summ["recency"], summ["T"])
    t_bg = time.perf_counter() - t1
    rep = summ[summ["frequency"] > 0]
    t1 = time.perf_counter()
    ggf = GammaGammaFitter(penalizer_coef=0.0)
    ggf.fit(rep["frequency"], rep["monetary_value"])
    t_gg = time.perf_counter() - t1
    t1 = time.perf_counter()
    clv = ggf.customer_lifetime_value(
        bgf, summ["frequency"], summ["recency"], summ["T"], summ["monetary_value"],
        time=12, discount_rate=0.01, freq="D",
    )
    t_clv = time.perf_counter() - t1
    t_lt = time.perf_counter() - t0
    cpu_lt = time.process_time() - c0

    lp = bgf.params_
    gp = ggf.params_
    rows = []
    for k in ["r", "alpha", "a", "b"]:
        rows.append(("bgnbd", k, cp["params"][k], float(lp[k])))
    for k, lk in [("p", "p"), ("q", "q"), ("gamma", "v")]:
        rows.append(("gammagamma", k, cp["spend_params"][k], float(gp[lk])))

    # CLV agreement per customer
    ours = pd.read_csv(work / "crmcube_predictions.csv").set_index("customer")
    joined = ours.join(clv.rename("lt_clv"))
    rel = (joined["clv"] - joined["lt_clv"]).abs() / joined["lt_clv"].abs().clip(lower=1e-9)

    ct = cp.get("timings_seconds", {})
    crm_model = ct.get("fit_purchases", 0) + ct.get("fit_spend", 0) + ct.get("score", 0)
    lt_model = t_bg + t_gg + t_clv
    max_param = max(abs(a - b) / abs(b) for _, _, a, b in rows)
    print(f"customers            {args.customers:,}  (rows {nrows:,}, "
          f"{cp['distinct_histories']:,} distinct histories)")
    print(f"crmcube mine clv     {t_crm:8.2f} s  (whole command: "
          + ", ".join(f"{k} {ct[k]:.3f}" for k in
                      ["read", "summarise", "fit_purchases", "fit_spend", "score", "write"]
                      if k in ct) + ")")
    print(f"lifetimes            {t_lt:8.2f} s  (summary {t_summary:.2f}, BG/NBD fit {t_bg:.2f}, "
          f"Gamma-Gamma fit {t_gg:.2f}, CLV {t_clv:.2f})")
    print(f"ratio                {t_lt / t_crm:8.1f}x  wall clock, whole pipeline")
    if crm_model > 0:
        print(f"fit + score          crmcube {crm_model:.3f} s, lifetimes {lt_model:.2f} s, "
              f"ratio {lt_model / crm_model:.1f}x  (BG/NBD fit + Gamma-Gamma fit + CLV)")
    print(f"threads              crmcube {os.environ.get('RAYON_NUM_THREADS', os.cpu_count())}")
    print(f"CPU time             crmcube {cpu_crm:.2f} s, lifetimes {cpu_lt:.2f} s, "
          f"ratio {cpu_lt / cpu_crm:.1f}x")
    print(f"{'model':<12}{'param':<8}{'crmcube':>14}{'lifetimes':>14}{'rel diff':>12}")
    for m, k, a, b in rows:
        print(f"{m:<12}{k:<8}{a:>14.6f}{b:>14.6f}{abs(a - b) / abs(b):>12.2e}")
    print(f"BG/NBD log-likelihood (crmcube)  {cp['log_likelihood']:.3f}")
    print(f"per-customer CLV: median rel diff {rel.median():.2e}, 99th pct {rel.quantile(0.99):.2e}")
    print(f"largest parameter rel diff {max_param:.2e} "
          f"({'within' if max_param <= 0.01 else 'OUTSIDE'} 1%)")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "customers": args.customers, "rows": nrows, "crmcube_s": t_crm,
            "lifetimes_s": t_lt, "crmcube_cpu_s": cpu_crm, "lifetimes_cpu_s": cpu_lt,
            "lifetimes_parts_s": {
                "summary": t_summary, "bgnbd": t_bg, "gammagamma": t_gg, "clv": t_clv},
            "crmcube_parts_s": ct, "crmcube_fit_score_s": crm_model,
            "lifetimes_fit_score_s": lt_model,
            "distinct_histories": cp["distinct_histories"],
            "threads": os.environ.get("RAYON_NUM_THREADS", os.cpu_count()),
            "loadavg_before": os.getloadavg(),
            "max_param_rel_diff": max_param,
            "clv_rel_diff": {"median": float(rel.median()), "p99": float(rel.quantile(0.99))},
            "params": [{"model": m, "param": k, "crmcube": a, "lifetimes": b}
                       for m, k, a, b in rows],
        }, indent=2))


if __name__ == "__main__":
    main()
