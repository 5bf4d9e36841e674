//! Minimisation of the models' negative log-likelihoods: BFGS with analytic gradients
//! where the model has them (`minimize_smooth`), and derivative-free Nelder–Mead from
//! several starting points, then a restarted polish from the best vertex
//! (`minimize`), where it does not.
//!
//! The models optimise over log-parameters, so every point is admissible and the
//! simplex moves on a scale where a step means the same relative change for every
//! parameter.

/// Result of a minimisation.
#[derive(Debug, Clone)]
pub struct Minimum {
    /// Best point.
    pub x: Vec<f64>,
    /// Objective at `x`.
    pub value: f64,
    /// Objective evaluations used.
    pub evaluations: usize,
}

/// One Nelder–Mead run from `x0` with initial step `step`.
fn nelder_mead(
    f: &dyn Fn(&[f64]) -> f64,
    x0: &[f64],
    step: f64,
    max_evals: usize,
    tol: f64,
    xtol: f64,
) -> Minimum {
    let n = x0.len();
    let eval = |x: &[f64]| {
        let v = f(x);
        if v.is_finite() {
            v
        } else {
            f64::INFINITY
        }
    };
    let mut simplex: Vec<(Vec<f64>, f64)> = Vec::with_capacity(n + 1);
    simplex.push((x0.to_vec(), eval(x0)));
    for i in 0..n {
        let mut x = x0.to_vec();
        x[i] += step;
        let v = eval(&x);
        simplex.push((x, v));
    }
    let mut evals = n + 1;
    while evals < max_evals {
        simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
        let (best, worst) = (simplex[0].1, simplex[n].1);
        let spread = simplex
            .iter()
            .flat_map(|(x, _)| x.iter().zip(&simplex[0].0).map(|(a, b)| (a - b).abs()))
            .fold(0.0, f64::max);
        if (worst - best).abs() <= tol * (1.0 + best.abs()) && spread < xtol {
            break;
        }
        let centroid: Vec<f64> = (0..n)
            .map(|j| simplex[..n].iter().map(|(x, _)| x[j]).sum::<f64>() / n as f64)
            .collect();
        let towards = |t: f64| -> Vec<f64> {
            centroid
                .iter()
                .zip(&simplex[n].0)
                .map(|(c, w)| c + t * (w - c))
                .collect()
        };
        let xr = towards(-1.0);
        let fr = eval(&xr);
        evals += 1;
        if fr < simplex[0].1 {
            let xe = towards(-2.0);
            let fe = eval(&xe);
            evals += 1;
            simplex[n] = if fe < fr { (xe, fe) } else { (xr, fr) };
        } else if fr < simplex[n - 1].1 {
            simplex[n] = (xr, fr);
        } else {
            let (xc, fc) = if fr < simplex[n].1 {
                let x = towards(-0.5);
                let v = eval(&x);
                (x, v)
            } else {
                let x = towards(0.5);
                let v = eval(&x);
                (x, v)
            };
            evals += 1;
            if fc < simplex[n].1.min(fr) {
                simplex[n] = (xc, fc);
            } else {
                let b = simplex[0].0.clone();
                for (x, v) in simplex.iter_mut().skip(1) {
                    for (xi, bi) in x.iter_mut().zip(&b) {
                        *xi = bi + 0.5 * (*xi - bi);
                    }
                    *v = eval(x);
                }
                evals += n;
            }
        }
    }
    simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
    let (x, value) = simplex.swap_remove(0);
    Minimum {
        x,
        value,
        evaluations: evals,
    }
}

/// Minimises `f` from each of `starts`, then polishes the best point with restarts of
/// shrinking step until a restart no longer improves it.
pub fn minimize(f: &dyn Fn(&[f64]) -> f64, starts: &[Vec<f64>]) -> Minimum {
    let mut best: Option<Minimum> = None;
    let mut evaluations = 0;
    // Coarse runs from every start, then tight restarts from the best point.
    for s in starts {
        let m = nelder_mead(f, s, 0.5, 400, 1e-8, 1e-3);
        evaluations += m.evaluations;
        if best.as_ref().is_none_or(|b| m.value < b.value) {
            best = Some(m);
        }
    }
    let mut best = match best {
        Some(b) => b,
        None => {
            return Minimum {
                x: vec![],
                value: f64::INFINITY,
                evaluations,
            }
        }
    };
    for step in [0.1, 0.02, 0.005] {
        let m = nelder_mead(f, &best.x, step, 4000, 1e-13, 1e-7);
        evaluations += m.evaluations;
        let gain = best.value - m.value;
        if m.value < best.value {
            best = m;
        }
        if gain < 1e-10 * (1.0 + best.value.abs()) {
            break;
        }
    }
    best.evaluations = evaluations;
    best
}

/// An objective that also writes its gradient into the second argument.
pub type ValueAndGradient<'a> = &'a (dyn Fn(&[f64], &mut [f64]) -> f64 + Sync);

/// One BFGS run from `x0`: quasi-Newton steps with a backtracking (Armijo) line
/// search; the inverse-Hessian update is skipped when a step's curvature s·y is not
/// positive. Stops when the gradient is negligible against the objective's scale
/// (‖g‖∞ ≤ 1e-10·(1+|f|)), when a step no longer lowers `f` measurably, or after
/// `max_iter` steps. Non-finite values count as +∞ so the search backs off.
fn bfgs(fg: ValueAndGradient, x0: &[f64], max_iter: usize) -> Minimum {
    let n = x0.len();
    let mut evaluations = 0;
    let mut eval = |x: &[f64], g: &mut [f64]| {
        evaluations += 1;
        let v = fg(x, g);
        if v.is_finite() && g.iter().all(|d| d.is_finite()) {
            v
        } else {
            f64::INFINITY
        }
    };
    let mut x = x0.to_vec();
    let mut g = vec![0.0; n];
    let mut f = eval(&x, &mut g);
    if !f.is_finite() {
        return Minimum {
            x,
            value: f64::INFINITY,
            evaluations: 1,
        };
    }
    // Inverse Hessian approximation, row-major; identity until the first step
    // rescales it.
    let mut h = vec![0.0; n * n];
    for i in 0..n {
        h[i * n + i] = 1.0;
    }
    let mut first = true;
    let mut xn = vec![0.0; n];
    let mut gn = vec![0.0; n];
    for _ in 0..max_iter {
        let gmax = g.iter().fold(0.0f64, |m, d| m.max(d.abs()));
        if gmax <= 1e-10 * (1.0 + f.abs()) {
            break;
        }
        let mut d: Vec<f64> = (0..n)
            .map(|i| -(0..n).map(|j| h[i * n + j] * g[j]).sum::<f64>())
            .collect();
        let mut slope: f64 = d.iter().zip(&g).map(|(a, b)| a * b).sum();
        if slope >= 0.0 {
            // Not a descent direction: restart from steepest descent.
            h.iter_mut().for_each(|v| *v = 0.0);
            for i in 0..n {
                h[i * n + i] = 1.0;
            }
            first = true;
            d = g.iter().map(|v| -v).collect();
            slope = -g.iter().map(|v| v * v).sum::<f64>();
        }
        // Keep a step's move in log-parameter space moderate: at most 2 per
        // coordinate on the first try.
        let dmax = d.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let mut step = if dmax > 2.0 { 2.0 / dmax } else { 1.0 };
        let mut fnew;
        let mut tries = 0;
        loop {
            for i in 0..n {
                xn[i] = x[i] + step * d[i];
            }
            fnew = eval(&xn, &mut gn);
            if fnew <= f + 1e-4 * step * slope {
                break;
            }
            tries += 1;
            if tries > 60 {
                break;
            }
            step = if fnew.is_finite() {
                // Minimum of the quadratic through f, the slope and f(step), kept
                // within [0.1, 0.5] of the step.
                let curv = fnew - f - slope * step;
                let t = -slope * step * step / (2.0 * curv);
                t.clamp(0.1 * step, 0.5 * step)
            } else {
                step * 0.1
            };
        }
        if fnew > f {
            break;
        }
        let s: Vec<f64> = (0..n).map(|i| xn[i] - x[i]).collect();
        let y: Vec<f64> = (0..n).map(|i| gn[i] - g[i]).collect();
        let improvement = f - fnew;
        x.copy_from_slice(&xn);
        g.copy_from_slice(&gn);
        f = fnew;
        let sy: f64 = s.iter().zip(&y).map(|(a, b)| a * b).sum();
        if sy > 1e-300 {
            if first {
                let yy: f64 = y.iter().map(|v| v * v).sum();
                let scale = sy / yy;
                for i in 0..n {
                    for j in 0..n {
                        h[i * n + j] = if i == j { scale } else { 0.0 };
                    }
                }
                first = false;
            }
            // H ← (I − ρ s yᵀ) H (I − ρ y sᵀ) + ρ s sᵀ
            let rho = 1.0 / sy;
            let hy: Vec<f64> = (0..n)
                .map(|i| (0..n).map(|j| h[i * n + j] * y[j]).sum())
                .collect();
            let yhy: f64 = y.iter().zip(&hy).map(|(a, b)| a * b).sum();
            for i in 0..n {
                for j in 0..n {
                    h[i * n + j] += -rho * (hy[i] * s[j] + s[i] * hy[j])
                        + (rho * rho * yhy + rho) * s[i] * s[j];
                }
            }
        }
        if improvement <= 1e-15 * (1.0 + f.abs()) && step < 1e-6 {
            break;
        }
    }
    Minimum {
        x,
        value: f,
        evaluations,
    }
}

/// BFGS steps taken from every starting point before the best is followed to the end.
const SCOUT_ITERATIONS: usize = 6;

/// Minimises a smooth `fg` (value and gradient) by BFGS: a few steps from each of
/// `starts`, then the best point so far is followed until convergence (and the
/// other starts are not paid for in full).
pub fn minimize_smooth(fg: ValueAndGradient, starts: &[Vec<f64>]) -> Minimum {
    let mut best: Option<Minimum> = None;
    let mut evaluations = 0;
    for s in starts {
        let m = bfgs(fg, s, SCOUT_ITERATIONS);
        evaluations += m.evaluations;
        if best.as_ref().is_none_or(|b| m.value < b.value) {
            best = Some(m);
        }
    }
    let mut best = match best {
        Some(b) if b.value.is_finite() => b,
        other => {
            return Minimum {
                evaluations,
                ..other.unwrap_or(Minimum {
                    x: vec![],
                    value: f64::INFINITY,
                    evaluations: 0,
                })
            }
        }
    };
    let m = bfgs(fg, &best.x, 500);
    evaluations += m.evaluations;
    if m.value <= best.value {
        best = m;
    }
    best.evaluations = evaluations;
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_rosenbrock_minimum() {
        let f = |x: &[f64]| (1.0 - x[0]).powi(2) + 100.0 * (x[1] - x[0] * x[0]).powi(2);
        let m = minimize(&f, &[vec![-1.2, 1.0], vec![2.0, -1.0]]);
        assert!(
            (m.x[0] - 1.0).abs() < 1e-5 && (m.x[1] - 1.0).abs() < 1e-5,
            "{m:?}"
        );
    }

    #[test]
    fn finds_a_four_dimensional_quadratic_minimum() {
        let c = [0.3, -2.0, 1.5, 4.0];
        let f = |x: &[f64]| {
            x.iter()
                .zip(&c)
                .enumerate()
                .map(|(i, (a, b))| (i as f64 + 1.0) * (a - b).powi(2))
                .sum::<f64>()
                + 0.5 * (x[0] - c[0]) * (x[1] - c[1])
        };
        let m = minimize(&f, &[vec![0.0; 4]]);
        for (a, b) in m.x.iter().zip(&c) {
            assert!((a - b).abs() < 1e-5, "{m:?}");
        }
    }

    #[test]
    fn bfgs_finds_the_rosenbrock_minimum_with_few_evaluations() {
        let fg = |x: &[f64], g: &mut [f64]| {
            let (a, b) = (1.0 - x[0], x[1] - x[0] * x[0]);
            g[0] = -2.0 * a - 400.0 * x[0] * b;
            g[1] = 200.0 * b;
            a * a + 100.0 * b * b
        };
        let m = minimize_smooth(&fg, &[vec![-1.2, 1.0], vec![2.0, -1.0]]);
        assert!(
            (m.x[0] - 1.0).abs() < 1e-7 && (m.x[1] - 1.0).abs() < 1e-7,
            "{m:?}"
        );
        assert!(m.evaluations < 400, "{m:?}");
    }

    #[test]
    fn bfgs_backs_off_from_non_finite_values() {
        // ln-barrier: undefined (NaN) for x ≤ 0; minimum at x = 1.
        let fg = |x: &[f64], g: &mut [f64]| {
            g[0] = 1.0 - 1.0 / x[0];
            x[0] - x[0].ln()
        };
        let m = minimize_smooth(&fg, &[vec![8.0]]);
        assert!((m.x[0] - 1.0).abs() < 1e-8, "{m:?}");
    }
}
