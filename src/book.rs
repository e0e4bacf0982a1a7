//! The book's pages (book/src/*.md) as doctests: every Rust code block in the book is compiled and
//! run by `cargo test --release --doc -p smld`. (`mdbook test` cannot link the workspace crates.)

/// Chapter 1: score functions.
#[cfg(doctest)]
#[doc = include_str!("../book/src/ch01-scores.md")]
pub struct Ch01Scores;

/// Chapter 2: score matching.
#[cfg(doctest)]
#[doc = include_str!("../book/src/ch02-score-matching.md")]
pub struct Ch02ScoreMatching;

/// Chapter 3: sliced and denoising score matching.
#[cfg(doctest)]
#[doc = include_str!("../book/src/ch03-scalable.md")]
pub struct Ch03Scalable;

/// Chapter 4: Langevin dynamics.
#[cfg(doctest)]
#[doc = include_str!("../book/src/ch04-langevin.md")]
pub struct Ch04Langevin;

/// Chapter 5: the failure cases.
#[cfg(doctest)]
#[doc = include_str!("../book/src/ch05-failures.md")]
pub struct Ch05Failures;

/// Chapter 6: noise-conditional score networks.
#[cfg(doctest)]
#[doc = include_str!("../book/src/ch06-ncsn.md")]
pub struct Ch06Ncsn;

/// Chapter 7: NCSN on images.
#[cfg(doctest)]
#[doc = include_str!("../book/src/ch07-images.md")]
pub struct Ch07Images;

/// Chapter 9 (listed before the errata): what came next.
#[cfg(doctest)]
#[doc = include_str!("../book/src/ch09-after-ncsn.md")]
pub struct Ch09AfterNcsn;

/// Chapter 8: notation and errata.
#[cfg(doctest)]
#[doc = include_str!("../book/src/ch08-errata.md")]
pub struct Ch08Errata;
