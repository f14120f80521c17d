//! A user's crate that puts its own type in shared memory with only `shmkit` as a
//! dependency: `shmkit::Pod`/`Zeroable` derived through `shmkit::bytemuck`.

use shmkit::{Pod, Zeroable};

/// A record as a user would define it: `#[repr(C)]`, no padding (the filler is a field).
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[bytemuck(crate = "shmkit::bytemuck")]
#[repr(C)]
pub struct Reading {
    /// Which sensor.
    pub sensor: u32,
    /// Filler, so the struct has no padding.
    pub _pad: u32,
    /// The value read.
    pub value: f64,
}

#[cfg(test)]
mod tests {
    use super::Reading;
    use shmkit::typed::{Queue, SharedValue};

    #[test]
    fn derived_pod_goes_through_a_queue_and_a_shared_value() {
        let q = Queue::<Reading>::anonymous(4).expect("queue");
        let r = Reading {
            sensor: 3,
            _pad: 0,
            value: 21.5,
        };
        q.put(r).expect("put");
        assert_eq!(q.get(), Ok(r));

        let v = SharedValue::<Reading>::anonymous(r).expect("value");
        v.update(|x| x.value += 1.0).expect("update");
        assert_eq!(v.get().expect("get").value, 22.5);
    }

    #[test]
    fn the_bytemuck_of_shmkit_casts_it() {
        let r = Reading {
            sensor: 1,
            _pad: 0,
            value: 0.0,
        };
        let bytes = shmkit::bytemuck::bytes_of(&r);
        assert_eq!(bytes.len(), 16);
        assert_eq!(&bytes[..4], &1u32.to_ne_bytes());
    }
}
