//! Pure Rust kernels: no Python types, testable with `cargo test --no-default-features`.

pub mod adwin;
pub mod codec;
pub mod dd;
pub mod fused;
pub mod hashing;
pub mod ks;
pub mod msgpack;
pub mod page_hinkley;
pub mod psi;
pub mod risk;
pub mod route;
pub mod select;
pub mod sort;
pub mod ta;
pub mod threads;
pub mod welford;
pub mod winvar;
