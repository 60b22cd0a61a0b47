//! Privacy at load (DESIGN.md §5): only mapped fields enter the warehouse (the normalizer reads
//! nothing else), birth years become age groups, and open text is scrubbed here before it is
//! stored. Errors and logs name files, rows and columns, never answer text.

pub mod disclosure;
pub mod scrub;

pub use scrub::{Scrubbed, Scrubber};
