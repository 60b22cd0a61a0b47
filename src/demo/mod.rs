//! Seeded generators of realistic survey exports (demo and benchmark data).
