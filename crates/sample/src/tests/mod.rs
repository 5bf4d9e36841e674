//! Whole-generator tests on small samples: determinism, contract validity, referential
//! integrity and the consistency of the simulated behaviour.

mod behaviour;
mod determinism;
mod support;
mod validity;
