//! Derivative-free minimisation: Nelder–Mead from several starting points, then a
//! restarted polish from the best vertex.
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
}
