//! Integration tests: the real `crmcube` binary on real files (one test binary, so the
//! stack is linked once).

mod bad_input;
mod bad_input_more;
mod checks;
mod common;
mod cube;
mod end_to_end;
mod etl;
mod export;
mod mining;
mod mining_more;
mod notebook;
mod preagg;
mod scale_out;
mod serve;
mod sql;
mod versions;
