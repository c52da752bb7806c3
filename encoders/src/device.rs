//! Choosing where tensors live: `cpu`, `cuda` or `cuda:N`.

use crate::error::{EncoderError, Result};
use candle_core::Device;

/// Parses `cpu`, `cuda` (= `cuda:0`) or `cuda:N` and opens that device. Fails with a message
/// that says what to do when CUDA was not compiled in (`--features cuda`) or the GPU is absent.
pub fn parse_device(spec: &str) -> Result<Device> {
    let spec = spec.trim();
    let fail = |problem: String| EncoderError::Device { device: spec.to_string(), problem };
    let ordinal = match spec.to_ascii_lowercase().as_str() {
        "cpu" => return Ok(Device::Cpu),
        "cuda" | "gpu" => 0,
        s => match s.strip_prefix("cuda:") {
            Some(n) => n.parse::<usize>().map_err(|_| fail(format!("cannot parse GPU ordinal {n:?}; expected cuda:0, cuda:1, ...")))?,
            None => return Err(fail("expected cpu, cuda or cuda:N".into())),
        },
    };
    if !cfg!(feature = "cuda") {
        return Err(fail("this build has no CUDA support; rebuild with `--features cuda` (haidef-wsi-encoders/cuda) or use cpu".into()));
    }
    Device::new_cuda(ordinal).map_err(|e| fail(format!("cannot open CUDA device {ordinal}: {e}")))
}

/// `cpu` or `cuda:N`, for messages and metadata.
pub fn device_name(device: &Device) -> String {
    match device {
        Device::Cpu => "cpu".into(),
        Device::Cuda(_) => format!("cuda:{}", device.location().ordinal()),
        Device::Metal(_) => "metal".into(),
    }
}

trait Ordinal {
    fn ordinal(&self) -> usize;
}

impl Ordinal for candle_core::DeviceLocation {
    fn ordinal(&self) -> usize {
        match self {
            candle_core::DeviceLocation::Cuda { gpu_id } | candle_core::DeviceLocation::Metal { gpu_id } => *gpu_id,
            candle_core::DeviceLocation::Cpu => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_explains() {
        assert!(matches!(parse_device("cpu").unwrap(), Device::Cpu));
        assert!(matches!(parse_device(" CPU ").unwrap(), Device::Cpu));
        let err = parse_device("tpu").unwrap_err().to_string();
        assert!(err.contains("expected cpu, cuda or cuda:N"), "{err}");
        let err = parse_device("cuda:x").unwrap_err().to_string();
        assert!(err.contains("ordinal"), "{err}");
        if !cfg!(feature = "cuda") {
            let err = parse_device("cuda:0").unwrap_err().to_string();
            assert!(err.contains("--features cuda"), "{err}");
        }
        assert_eq!(device_name(&Device::Cpu), "cpu");
    }
}
