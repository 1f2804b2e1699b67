//! `phantom:` — a deterministic synthetic abdominal CT with ground truth, generated slice by
//! slice. Not training data: it exists so that graphs run with no scans at hand.
//! Anatomy: skin fat, the abdominal wall, a cavity of fat and bowel, the lung bases and heart above
//! the liver's dome, spine, aorta, kidneys, and a liver with 1-4 round lesions. Without the cavity,
//! lungs and heart (before 2026-12-05) the shipped liver networks took the uniform soft tissue
//! that filled the body for liver.
//!
//! Spec strings: `phantom:` (512x512x100 voxels, 0.7 x 0.7 x 2 mm), `phantom:small`
//! (128x128x40), `phantom:NIxNJxNK` (any size over the same 358 x 358 x 200 mm field of view),
//! optionally `,seed=N` (lesion count 1-4, positions and sizes, noise).
//! Layout as the IRCADb files: i toward patient left, j toward posterior, k toward superior.

use ndarray::Array2;
use voxflow_runtime::stream::{Header, StreamType};

const FOV_MM: [f64; 3] = [200.0, 358.4, 358.4];

#[derive(Clone, Debug)]
pub struct Phantom {
    /// `[nk, nj, ni]`.
    pub shape: [usize; 3],
    pub seed: u64,
    lesions: Vec<([f64; 3], f64)>,
}

/// The SplitMix64 increment.
pub const SPLITMIX_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64 of `x` (Steele et al. 2014): a small, seeded, reproducible hash; step `x` by
/// [`SPLITMIX_GAMMA`] for a stream.
pub fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(SPLITMIX_GAMMA);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn unit(x: u64) -> f64 {
    (splitmix(x) >> 11) as f64 / (1u64 << 53) as f64
}

impl Phantom {
    pub fn parse(spec: &str) -> Result<Phantom, String> {
        let body = spec.strip_prefix("phantom:").ok_or("not a phantom spec")?;
        let mut shape = [100, 512, 512];
        let mut seed = 1;
        for tok in body.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            if tok == "small" {
                shape = [40, 128, 128];
            } else if let Some(s) = tok.strip_prefix("seed=") {
                seed = s.parse().map_err(|_| format!("phantom: bad seed `{s}`"))?;
            } else {
                let d: Vec<usize> = tok
                    .split('x')
                    .map(|v| {
                        v.parse().map_err(|_| {
                            format!("phantom: `{tok}` is not small, NIxNJxNK or seed=N")
                        })
                    })
                    .collect::<Result<_, _>>()?;
                if d.len() != 3 || d.iter().any(|&v| !(8..=2048).contains(&v)) {
                    return Err(format!(
                        "phantom: size `{tok}` must be NIxNJxNK with each in 8..2048"
                    ));
                }
                shape = [d[2], d[1], d[0]];
            }
        }
        let count = 1 + (splitmix(seed) % 4) as usize;
        let lesions = (0..count)
            .map(|n| {
                let r = |m: u64| unit(seed.wrapping_mul(1000).wrapping_add(n as u64 * 10 + m));
                // Inside the right lobe, in mm (x left+, y posterior+, z superior+).
                let c = [-75.0 + 40.0 * r(1), -25.0 + 40.0 * r(2), 10.0 + 40.0 * r(3)];
                (c, 6.0 + 9.0 * r(4))
            })
            .collect();
        Ok(Phantom {
            shape,
            seed,
            lesions,
        })
    }

    pub fn spacing(&self) -> [f64; 3] {
        [
            FOV_MM[0] / self.shape[0] as f64,
            FOV_MM[1] / self.shape[1] as f64,
            FOV_MM[2] / self.shape[2] as f64,
        ]
    }

    pub fn header(&self, ty: StreamType) -> Header {
        let s = self.spacing();
        let mut h = Header::new(ty, self.shape, s);
        h.affine = [
            [-s[2], 0.0, 0.0, 0.0],
            [0.0, -s[1], 0.0, 0.0],
            [0.0, 0.0, s[0], 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        crate::meta::set_modality(&mut h, "CT");
        h.meta.insert(
            "source".into(),
            format!("phantom seed {}", self.seed).into(),
        );
        h
    }

    /// Millimetre position of voxel (k, j, i) relative to the volume centre.
    fn mm(&self, k: usize, j: usize, i: usize) -> [f64; 3] {
        let s = self.spacing();
        [
            (i as f64 + 0.5 - self.shape[2] as f64 / 2.0) * s[2],
            (j as f64 + 0.5 - self.shape[1] as f64 / 2.0) * s[1],
            (k as f64 + 0.5 - self.shape[0] as f64 / 2.0) * s[0],
        ]
    }

    fn liver(p: [f64; 3]) -> bool {
        let [x, y, z] = p;
        // Right lobe ellipsoid with a left lobe that thins and moves anterior toward the left.
        let taper = if x > -30.0 {
            (1.0 - (x + 30.0) / 110.0).max(0.0)
        } else {
            1.0
        };
        let ry = 70.0 * taper.max(0.2);
        let cy = -10.0 - 30.0 * (1.0 - taper);
        let rz = 65.0 * (0.6 + 0.4 * taper);
        let e = ((x + 55.0) / 90.0).powi(2) + ((y - cy) / ry).powi(2) + ((z - 25.0) / rz).powi(2);
        // Flattened where it meets the right kidney.
        e <= 1.0 && !(x < -45.0 && y > 35.0 && z < 5.0)
    }

    /// Ground truth label of a voxel: 0 background, 1 liver, 2 lesion.
    fn label_at(&self, p: [f64; 3]) -> u8 {
        if !Self::liver(p) {
            return 0;
        }
        for (c, r) in &self.lesions {
            let d2 = (p[0] - c[0]).powi(2) + (p[1] - c[1]).powi(2) + (p[2] - c[2]).powi(2);
            if d2 <= r * r {
                return 2;
            }
        }
        1
    }

    /// Squared elliptic radius of the body outline at (x, y): inside the body where <= 1.
    fn body(x: f64, y: f64) -> f64 {
        (x / 165.0).powi(2) + (y / 120.0).powi(2)
    }

    /// HU of a voxel outside the liver, without noise; `body` is [`Self::body`] there.
    fn background_hu(x: f64, y: f64, z: f64, body: f64) -> f64 {
        if body > 1.0 {
            return -1000.0;
        }
        let in_circle = |cx: f64, cy: f64, r: f64| (x - cx).powi(2) + (y - cy).powi(2) <= r * r;
        let kidney = |cx: f64| ((x - cx) / 25.0).powi(2) + ((y - 55.0) / 35.0).powi(2) <= 1.0;
        let heart = ((x - 25.0) / 55.0).powi(2)
            + ((y + 25.0) / 45.0).powi(2)
            + ((z - 100.0) / 40.0).powi(2)
            <= 1.0;
        let lung =
            z > 45.0 && ((x.abs() - 70.0) / 55.0).powi(2) + ((y - 20.0) / 75.0).powi(2) <= 1.0;
        if in_circle(0.0, 75.0, 18.0) {
            450.0 // vertebral body
        } else if in_circle(15.0, 45.0, 11.0) {
            180.0 // aorta
        } else if z < 20.0 && z > -70.0 && (kidney(-75.0) || kidney(75.0)) {
            160.0 // kidneys
        } else if z < 60.0 && ((x - 20.0) / 60.0).powi(2) + ((y + 40.0) / 30.0).powi(2) <= 1.0 {
            -20.0 // bowel content
        } else if heart {
            120.0 // contrast-filled heart above the dome
        } else if lung {
            -850.0 // lung bases beside and behind the dome
        } else if body > 0.82 {
            -100.0 // subcutaneous fat
        } else if body > 0.62 {
            40.0 // abdominal wall muscle
        } else {
            // The cavity: a smooth 3D pattern of fat, bowel wall and bowel content, so that the
            // liver is the one large uniform organ as in a real scan.
            let t = (x / 9.0).sin() * (y / 9.0 + 1.3).sin() * (z / 11.0 + 0.7).sin();
            if t > 0.15 {
                -90.0
            } else if t < -0.35 {
                -20.0
            } else {
                35.0
            }
        }
    }

    fn hu_at(&self, p: [f64; 3], label: u8, noise_key: u64) -> f32 {
        let [x, y, z] = p;
        let body = Self::body(x, y);
        let mut hu = match label {
            1 => 95.0 + 12.0 * ((x * 0.05).sin() * (z * 0.04).cos()),
            2 => 45.0,
            _ => Self::background_hu(x, y, z, body),
        };
        // Gaussian noise (Box-Muller), sigma 12 HU inside the body.
        if body <= 1.0 {
            let u1 = unit(noise_key).max(1e-12);
            let u2 = unit(noise_key ^ 0xA5A5_5A5A_DEAD_BEEF);
            hu += 12.0 * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        }
        hu.round().clamp(-1024.0, 3071.0) as f32
    }

    /// CT slice k in HU.
    pub fn image_slice(&self, k: usize) -> Array2<f32> {
        let [_, nj, ni] = self.shape;
        Array2::from_shape_fn((nj, ni), |(j, i)| {
            let p = self.mm(k, j, i);
            let key = self.seed.wrapping_mul(0x1000_0000_01B3) ^ ((k * nj + j) * ni + i) as u64;
            self.hu_at(p, self.label_at(p), key)
        })
    }

    /// Ground truth slice k.
    pub fn label_slice(&self, k: usize) -> Array2<u8> {
        let [_, nj, ni] = self.shape;
        Array2::from_shape_fn((nj, ni), |(j, i)| self.label_at(self.mm(k, j, i)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anatomy_is_where_it_should_be() {
        let p = Phantom::parse("phantom:small").unwrap();
        let mut liver = 0usize;
        let mut lesion = 0usize;
        let mut liver_i = 0usize;
        for k in 0..p.shape[0] {
            let l = p.label_slice(k);
            let img = p.image_slice(k);
            for ((j, i), &v) in l.indexed_iter() {
                if v >= 1 {
                    liver += 1;
                    liver_i += i;
                    assert!(
                        (-100.0..=250.0).contains(&img[[j, i]]),
                        "liver HU {}",
                        img[[j, i]]
                    );
                }
                if v == 2 {
                    lesion += 1;
                }
            }
        }
        assert!(liver > 1000 && lesion > 10, "liver {liver} lesion {lesion}");
        // Patient right = low i.
        assert!((liver_i as f64 / liver as f64) < p.shape[2] as f64 / 2.0);
        // Deterministic.
        assert_eq!(
            p.image_slice(20),
            Phantom::parse("phantom:small").unwrap().image_slice(20)
        );
        assert_ne!(
            p.image_slice(20),
            Phantom::parse("phantom:small,seed=2")
                .unwrap()
                .image_slice(20)
        );
    }

    /// Voxels of slice `k` inside the abdominal cavity (away from the body wall) with HU in `hu`.
    fn cavity_voxels(p: &Phantom, k: usize, hu: std::ops::Range<f32>) -> usize {
        let img = p.image_slice(k);
        img.indexed_iter()
            .filter(|&((j, i), v)| {
                let [x, y, _] = p.mm(k, j, i);
                Phantom::body(x, y) < 0.6 && hu.contains(v)
            })
            .count()
    }

    #[test]
    fn lungs_lie_above_the_liver_and_fat_below() {
        // phantom:small has 5 mm slices: slice 35 is 77.5 mm above the centre, slice 5 72.5 below.
        let p = Phantom::parse("phantom:small").unwrap();
        assert!(cavity_voxels(&p, 35, -1000.0..-600.0) > 100);
        assert_eq!(cavity_voxels(&p, 5, -1000.0..-600.0), 0);
        assert!(cavity_voxels(&p, 5, -150.0..-50.0) > 100);
    }

    #[test]
    fn bad_specs_are_errors() {
        assert!(Phantom::parse("phantom:huge").is_err());
        assert!(Phantom::parse("phantom:4x4x4").is_err());
        assert_eq!(
            Phantom::parse("phantom:64x32x16").unwrap().shape,
            [16, 32, 64]
        );
    }
}
