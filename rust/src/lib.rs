//! Native hot path of autoopt, exposed to Python as `autoopt._native`.
//!
//! `kernels` holds the pure algorithms (drift statistics, hashing, indicators); `py` binds them
//! to Python (feature `python`); `plugin` exports the polars expression-plugin ABI.

pub mod kernels;
pub mod plugin;

#[cfg(feature = "python")]
mod py;
