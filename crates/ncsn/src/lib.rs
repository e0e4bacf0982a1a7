//! NCSN on images: the RefineNet score network with CondInstanceNorm++, data, training,
//! sampling and inpainting (Song & Ermon 2019).
pub mod model;
