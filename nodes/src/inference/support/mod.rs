//! What the inference nodes share: the liver mask of the cascade.

pub mod liver;
