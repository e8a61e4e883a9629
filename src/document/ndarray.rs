//! [`NdArray`]: an n-dimensional array as DocArray sends it: a raw little-endian buffer, a
//! shape, and a numpy dtype string. The buffer is kept as it came, so an array passes through
//! unchanged; typed views convert on demand.

use bytes::Bytes;
use serde_json::Value;

/// The element types we read and write, by numpy dtype string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    F32,
    F64,
    I32,
    I64,
    U8,
    Bool,
}

impl DType {
    /// Parses a numpy dtype string (`"<f4"`, `"float32"`, `"|u1"`, ...).
    pub fn parse(s: &str) -> Option<DType> {
        Some(match s {
            "<f4" | "f4" | "float32" => DType::F32,
            "<f8" | "f8" | "float64" => DType::F64,
            "<i4" | "i4" | "int32" => DType::I32,
            "<i8" | "i8" | "int64" => DType::I64,
            "|u1" | "u1" | "uint8" => DType::U8,
            "|b1" | "b1" | "bool" => DType::Bool,
            _ => return None,
        })
    }

    /// The canonical numpy string, as numpy's `dtype.str` writes it.
    pub fn numpy(self) -> &'static str {
        match self {
            DType::F32 => "<f4",
            DType::F64 => "<f8",
            DType::I32 => "<i4",
            DType::I64 => "<i8",
            DType::U8 => "|u1",
            DType::Bool => "|b1",
        }
    }

    /// The size of one element, in bytes.
    pub fn size(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F64 | DType::I64 => 8,
            DType::U8 | DType::Bool => 1,
        }
    }
}

/// Why bytes and a shape do not make an array.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum NdArrayError {
    #[error("unsupported dtype '{0}' (supported: <f4, <f8, <i4, <i8, |u1, |b1)")]
    UnsupportedDType(String),
    #[error("buffer of {len} bytes does not hold shape {shape:?} of {dtype}")]
    BadLength {
        len: usize,
        shape: Vec<u32>,
        dtype: String,
    },
    #[error("not a numeric array: {0}")]
    NotNumeric(String),
}

/// A dense n-dimensional array.
#[derive(Clone, Debug, PartialEq)]
pub struct NdArray {
    /// Raw little-endian elements.
    pub buffer: Bytes,
    pub shape: Vec<u32>,
    /// numpy dtype string, kept as sent.
    pub dtype: String,
    /// DocArray's `parameters` Struct of the array, kept as sent.
    pub parameters: Option<prost_types::Struct>,
}

macro_rules! typed_constructor {
    ($name:ident, $t:ty, $dtype:expr) => {
        /// A 1-d array of these values.
        pub fn $name(values: &[$t]) -> NdArray {
            let mut buffer = Vec::with_capacity(values.len() * std::mem::size_of::<$t>());
            for v in values {
                buffer.extend_from_slice(&v.to_le_bytes());
            }
            NdArray {
                buffer: buffer.into(),
                shape: vec![values.len() as u32],
                dtype: $dtype.numpy().into(),
                parameters: None,
            }
        }
    };
}

impl NdArray {
    typed_constructor!(from_f32, f32, DType::F32);
    typed_constructor!(from_f64, f64, DType::F64);
    typed_constructor!(from_i32, i32, DType::I32);
    typed_constructor!(from_i64, i64, DType::I64);

    /// The same array with another shape (same number of elements).
    pub fn reshaped(mut self, shape: Vec<u32>) -> NdArray {
        self.shape = shape;
        self
    }

    /// Number of elements the shape says.
    pub fn len(&self) -> usize {
        self.shape.iter().map(|&d| d as usize).product()
    }

    /// Whether it has no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn checked_dtype(&self) -> Result<DType, NdArrayError> {
        let dtype = DType::parse(&self.dtype)
            .ok_or_else(|| NdArrayError::UnsupportedDType(self.dtype.clone()))?;
        if self.buffer.len() != self.len() * dtype.size() {
            return Err(NdArrayError::BadLength {
                len: self.buffer.len(),
                shape: self.shape.clone(),
                dtype: self.dtype.clone(),
            });
        }
        Ok(dtype)
    }

    /// All elements as f64, in row-major order, whatever the dtype.
    pub fn to_f64_vec(&self) -> Result<Vec<f64>, NdArrayError> {
        let dtype = self.checked_dtype()?;
        let b = &self.buffer;
        let n = self.len();
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let at = |k: usize| &b[i * k..(i + 1) * k];
            out.push(match dtype {
                DType::F32 => f32::from_le_bytes(at(4).try_into().unwrap()) as f64,
                DType::F64 => f64::from_le_bytes(at(8).try_into().unwrap()),
                DType::I32 => i32::from_le_bytes(at(4).try_into().unwrap()) as f64,
                DType::I64 => i64::from_le_bytes(at(8).try_into().unwrap()) as f64,
                DType::U8 | DType::Bool => b[i] as f64,
            });
        }
        Ok(out)
    }

    /// All elements as f32 (converted from the dtype), in row-major order.
    pub fn to_f32_vec(&self) -> Result<Vec<f32>, NdArrayError> {
        if self.checked_dtype()? == DType::F32 {
            return Ok(self
                .buffer
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect());
        }
        Ok(self.to_f64_vec()?.into_iter().map(|v| v as f32).collect())
    }

    /// The array as nested JSON lists (the form REST clients send and receive).
    pub fn to_json(&self) -> Result<Value, NdArrayError> {
        let dtype = self.checked_dtype()?;
        let flat = self.to_f64_vec()?;
        let as_value = |v: f64| match dtype {
            DType::F32 | DType::F64 => Value::from(v),
            DType::Bool => Value::Bool(v != 0.0),
            _ => Value::from(v as i64),
        };
        fn nest(flat: &[f64], shape: &[u32], leaf: &dyn Fn(f64) -> Value) -> Value {
            match shape {
                [] => flat.first().map(|&v| leaf(v)).unwrap_or(Value::Null),
                [_] => Value::Array(flat.iter().map(|&v| leaf(v)).collect()),
                [n, rest @ ..] => {
                    let step = flat.len() / (*n as usize).max(1);
                    Value::Array(
                        (0..*n as usize)
                            .map(|i| nest(&flat[i * step..(i + 1) * step], rest, leaf))
                            .collect(),
                    )
                }
            }
        }
        Ok(nest(&flat, &self.shape, &as_value))
    }

    /// An array from nested JSON lists of numbers: f64 when any element has a fraction,
    /// else i64. Ragged lists are refused.
    pub fn from_json(value: &Value) -> Result<NdArray, NdArrayError> {
        let mut shape = Vec::new();
        let mut cursor = value;
        while let Value::Array(items) = cursor {
            shape.push(items.len() as u32);
            match items.first() {
                Some(first) => cursor = first,
                None => break,
            }
        }
        let mut flat = Vec::new();
        collect_leaves(value, &shape, &mut flat)?;
        let all_integers = flat.iter().all(|n| n.is_i64());
        let array = if all_integers && !flat.is_empty() {
            let v: Vec<i64> = flat.iter().map(|n| n.as_i64().unwrap()).collect();
            NdArray::from_i64(&v)
        } else {
            let v: Vec<f64> = flat
                .iter()
                .map(|n| n.as_f64().unwrap_or(f64::NAN))
                .collect();
            NdArray::from_f64(&v)
        };
        Ok(array.reshaped(shape))
    }
}

fn collect_leaves(
    value: &Value,
    shape: &[u32],
    out: &mut Vec<serde_json::Number>,
) -> Result<(), NdArrayError> {
    match (value, shape) {
        (Value::Number(n), []) => {
            out.push(n.clone());
            Ok(())
        }
        (Value::Array(items), [n, rest @ ..]) if items.len() == *n as usize => {
            items.iter().try_for_each(|i| collect_leaves(i, rest, out))
        }
        (other, _) => Err(NdArrayError::NotNumeric(format!(
            "expected a rectangular list of numbers, found {}",
            short(other)
        ))),
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 40 {
        format!("{}...", &s[..40])
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_round_trips() {
        assert_eq!(
            NdArray::from_f32(&[1.5, -2.0]).to_f32_vec().unwrap(),
            vec![1.5, -2.0]
        );
        assert_eq!(
            NdArray::from_i64(&[7, -9]).to_f64_vec().unwrap(),
            vec![7.0, -9.0]
        );
        assert_eq!(NdArray::from_i32(&[3]).dtype, "<i4");
        assert_eq!(NdArray::from_f64(&[0.25]).to_f32_vec().unwrap(), vec![0.25]);
    }

    #[test]
    fn json_nests_by_shape() {
        let a = NdArray::from_f32(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).reshaped(vec![2, 3]);
        let j = a.to_json().unwrap();
        assert_eq!(j, serde_json::json!([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]));
        let back = NdArray::from_json(&j).unwrap();
        assert_eq!(back.shape, vec![2, 3]);
        assert_eq!(back.to_f32_vec().unwrap(), a.to_f32_vec().unwrap());
    }

    #[test]
    fn bad_buffers_and_ragged_json_are_errors() {
        let mut a = NdArray::from_f32(&[1.0]);
        a.shape = vec![3];
        assert!(matches!(
            a.to_f64_vec(),
            Err(NdArrayError::BadLength { .. })
        ));
        a.dtype = "<c16".into();
        assert!(matches!(
            a.to_f64_vec(),
            Err(NdArrayError::UnsupportedDType(_))
        ));
        assert!(NdArray::from_json(&serde_json::json!([[1, 2], [3]])).is_err());
    }
}
