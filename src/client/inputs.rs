//! Where a client's documents come from: generators that read files lazily, one document at a
//! time, so that posting a file of any size holds only the requests in flight.
//!
//! Each generator yields `Result<Document, InputError>`; an error names the file and the line
//! (or the file and why), and ends the input.

use crate::document::{DType, Document, NdArray};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// A bad input: `<file>:<line>: <what>` or `<file>: <what>`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{origin}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct InputError {
    pub origin: String,
    pub line: Option<u64>,
    pub message: String,
}

impl InputError {
    fn new(origin: &str, line: Option<u64>, message: impl Into<String>) -> Self {
        InputError {
            origin: origin.into(),
            line,
            message: message.into(),
        }
    }
}

/// A lazy sequence of documents.
pub type Documents = Box<dyn Iterator<Item = Result<Document, InputError>> + Send>;

/// How to read an input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputFormat {
    Csv,
    Ndjson,
    Lines,
    Files,
    Npy,
}

impl InputFormat {
    /// The format a `--input-format` name stands for (`csv`, `ndjson`, ...), if it is one.
    pub fn parse(s: &str) -> Option<InputFormat> {
        Some(match s {
            "csv" => InputFormat::Csv,
            "ndjson" | "jsonl" | "json" => InputFormat::Ndjson,
            "lines" | "txt" | "text" => InputFormat::Lines,
            "files" | "glob" => InputFormat::Files,
            "npy" | "ndarray" => InputFormat::Npy,
            _ => return None,
        })
    }

    /// The format a path implies: a glob pattern reads files, else the extension decides.
    pub fn guess(input: &str) -> Option<InputFormat> {
        if input.contains(['*', '?', '[']) {
            return Some(InputFormat::Files);
        }
        let ext = Path::new(input).extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "csv" | "tsv" => InputFormat::Csv,
            "ndjson" | "jsonl" => InputFormat::Ndjson,
            "txt" | "text" => InputFormat::Lines,
            "npy" => InputFormat::Npy,
            _ => return None,
        })
    }
}

/// Maps CSV column names to document fields (the reference's `field_resolver`).
pub type FieldResolver = BTreeMap<String, String>;

/// Opens `input` (a path, a glob, or `-` for stdin) as documents in `format`.
pub fn open(
    input: &str,
    format: InputFormat,
    resolver: &FieldResolver,
) -> Result<Documents, InputError> {
    let origin = if input == "-" { "<stdin>" } else { input };
    let reader = || -> Result<Box<dyn BufRead + Send>, InputError> {
        if input == "-" {
            Ok(Box::new(BufReader::new(std::io::stdin())))
        } else {
            let f = File::open(input).map_err(|e| InputError::new(origin, None, io_message(&e)))?;
            Ok(Box::new(BufReader::with_capacity(1 << 16, f)))
        }
    };
    Ok(match format {
        InputFormat::Csv => from_csv(reader()?, origin, resolver.clone()),
        InputFormat::Ndjson => from_ndjson(reader()?, origin),
        InputFormat::Lines => from_lines(reader()?, origin),
        InputFormat::Files => from_files(input, true)?,
        InputFormat::Npy => from_ndarray(reader()?, origin)?,
    })
}

fn io_message(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        _ => e.to_string(),
    }
}

/// Documents from CSV with a header row: each column goes to the field the resolver names (or
/// the field of its own name: id, text, uri, mime_type, parent_id, modality), the rest to
/// `tags`, as strings.
pub fn from_csv(
    reader: impl Read + Send + 'static,
    origin: &str,
    resolver: FieldResolver,
) -> Documents {
    let origin = origin.to_string();
    // Flexible: a record of the wrong length is reported here, with what likely went wrong.
    let mut csv = csv::ReaderBuilder::new().flexible(true).from_reader(reader);
    let headers = match csv.headers() {
        Ok(h) => h
            .iter()
            .map(|c| resolver.get(c).cloned().unwrap_or_else(|| c.to_string()))
            .collect::<Vec<_>>(),
        Err(e) => {
            return Box::new(std::iter::once(Err(InputError::new(
                &origin,
                Some(1),
                e.to_string(),
            ))));
        }
    };
    let mut failed = false;
    Box::new(csv.into_records().map_while(move |record| {
        if failed {
            return None;
        }
        let record = match record {
            Ok(r) if r.len() == headers.len() => r,
            Ok(r) => {
                failed = true;
                let line = r.position().map(|p| p.line());
                // A field that runs over lines, in a record too short: a quote never closed.
                let message = if r.iter().any(|f| f.contains('\n')) {
                    "a quote opened on this line is never closed (its field runs on to the end of the file)".to_string()
                } else {
                    format!(
                        "expected {} fields as in the header, found {}",
                        headers.len(),
                        r.len()
                    )
                };
                return Some(Err(InputError::new(&origin, line, message)));
            }
            Err(e) => {
                failed = true;
                let line = e.position().map(|p| p.line());
                return Some(Err(InputError::new(&origin, line, e.to_string())));
            }
        };
        let mut doc = Document::new();
        for (field, value) in headers.iter().zip(record.iter()) {
            match field.as_str() {
                "id" if !value.is_empty() => doc.id = value.to_string(),
                "id" => {}
                "text" => doc.text = Some(value.to_string()),
                "uri" => doc.uri = Some(value.to_string()),
                "mime_type" => doc.mime_type = Some(value.to_string()),
                "parent_id" => doc.parent_id = Some(value.to_string()),
                "modality" => doc.modality = Some(value.to_string()),
                other => {
                    doc.tags.insert(other.to_string(), value.into());
                }
            }
        }
        Some(Ok(doc))
    }))
}

/// How many documents a file holds, when that is cheap to know: records of a CSV, non-empty
/// lines of NDJSON or text. None for stdin, globs and arrays (or a file that cannot be read).
pub fn count(input: &str, format: InputFormat) -> Option<u64> {
    if input == "-" {
        return None;
    }
    match format {
        InputFormat::Csv => Some(csv::Reader::from_path(input).ok()?.records().count() as u64),
        InputFormat::Ndjson | InputFormat::Lines => {
            let reader = BufReader::new(File::open(input).ok()?);
            Some(
                reader
                    .lines()
                    .map_while(Result::ok)
                    .filter(|l| !l.trim().is_empty())
                    .count() as u64,
            )
        }
        InputFormat::Files | InputFormat::Npy => None,
    }
}

/// The columns of a CSV file's header that go to `tags` when none goes to `text` (after the
/// resolver), for a note to the user; None when one goes to `text` or there is no header.
pub fn csv_columns_without_text(path: &Path, resolver: &FieldResolver) -> Option<Vec<String>> {
    let mut csv = csv::Reader::from_path(path).ok()?;
    let fields: Vec<String> = csv
        .headers()
        .ok()?
        .iter()
        .map(|c| resolver.get(c).cloned().unwrap_or_else(|| c.to_string()))
        .collect();
    const FIELDS: &[&str] = &["id", "text", "uri", "mime_type", "parent_id", "modality"];
    (!fields.iter().any(|f| f == "text")).then(|| {
        fields
            .into_iter()
            .filter(|f| !FIELDS.contains(&f.as_str()))
            .collect()
    })
}

/// Documents from newline-delimited JSON, one document object per line (blank lines skipped).
fn from_ndjson(reader: impl BufRead + Send + 'static, origin: &str) -> Documents {
    let origin = origin.to_string();
    numbered_lines(reader, origin.clone(), move |n, line| {
        let value: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| InputError::new(&origin, Some(n), format!("not valid JSON: {e}")))?;
        Document::from_json(&value).map_err(|e| InputError::new(&origin, Some(n), e))
    })
}

/// One text document per non-empty line.
fn from_lines(reader: impl BufRead + Send + 'static, origin: &str) -> Documents {
    numbered_lines(reader, origin.to_string(), |_, line| {
        Ok(Document::from_text(line))
    })
}

/// Reads non-empty lines with their numbers, turning each into a document; stops at the first error.
fn numbered_lines(
    reader: impl BufRead + Send + 'static,
    origin: String,
    mut make: impl FnMut(u64, &str) -> Result<Document, InputError> + Send + 'static,
) -> Documents {
    let mut failed = false;
    Box::new(reader.lines().enumerate().filter_map(move |(i, line)| {
        if failed {
            return None;
        }
        let n = i as u64 + 1;
        let result = match line {
            Err(e) => Err(InputError::new(&origin, Some(n), e.to_string())),
            Ok(l) if l.trim().is_empty() => return None,
            Ok(l) => make(n, l.trim_end_matches('\r')),
        };
        failed = result.is_err();
        Some(result)
    }))
}

/// One document per file matching `pattern`: `uri` is the path, `mime_type` follows the
/// extension, and the content is `text` (UTF-8 files, when `text` is asked) or `blob`.
fn from_files(pattern: &str, text: bool) -> Result<Documents, InputError> {
    let paths = glob::glob(pattern)
        .map_err(|e| InputError::new(pattern, None, format!("not a valid glob: {e}")))?;
    // The names only (the files are read one at a time, as they are sent): a pattern that
    // matches no file is a mistake, not zero documents.
    let paths: Vec<Result<PathBuf, InputError>> = paths
        .filter_map(|entry| match entry {
            Ok(p) if p.is_file() => Some(Ok(p)),
            Ok(_) => None,
            Err(e) => Some(Err(InputError::new(pattern, None, e.to_string()))),
        })
        .collect();
    if paths.is_empty() {
        return Err(InputError::new(pattern, None, "matches no file"));
    }
    Ok(Box::new(paths.into_iter().map(move |entry| {
        let path = match entry {
            Ok(p) => p,
            Err(e) => return Err(e),
        };
        let origin = path.display().to_string();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) => return Err(InputError::new(&origin, None, io_message(&e))),
        };
        let mut doc = Document::new();
        doc.mime_type = mime_of(&path).map(str::to_string);
        doc.uri = Some(origin);
        match String::from_utf8(bytes) {
            Ok(s) if text => doc.text = Some(s),
            Ok(s) => doc.blob = Some(s.into_bytes().into()),
            Err(e) => doc.blob = Some(e.into_bytes().into()),
        }
        Ok(doc)
    })))
}

/// The mime type of a file by its extension.
fn mime_of(path: &Path) -> Option<&'static str> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    Some(match ext.as_str() {
        "txt" | "text" | "md" => "text/plain",
        "html" | "htm" => "text/html",
        "csv" => "text/csv",
        "json" => "application/json",
        "ndjson" | "jsonl" => "application/x-ndjson",
        "pdf" => "application/pdf",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "wav" => "audio/wav",
        "mp3" => "audio/mpeg",
        "mp4" => "video/mp4",
        "npy" => "application/x-npy",
        _ => return None,
    })
}

/// One document per row of a `.npy` array (C order, little-endian f4/f8/i4/i8/u1/b1), the row
/// as its `tensor` (the reference's `from_ndarray`).
fn from_ndarray(
    mut reader: impl Read + Send + 'static,
    origin: &str,
) -> Result<Documents, InputError> {
    let err = |m: String| InputError::new(origin, None, m);
    let mut magic = [0u8; 8];
    reader
        .read_exact(&mut magic)
        .map_err(|e| err(format!("not a .npy file: {e}")))?;
    if &magic[..6] != b"\x93NUMPY" {
        return Err(err("not a .npy file (no NUMPY magic)".into()));
    }
    let header_len = if magic[6] == 1 {
        let mut n = [0u8; 2];
        reader.read_exact(&mut n).map_err(|e| err(e.to_string()))?;
        u16::from_le_bytes(n) as usize
    } else {
        let mut n = [0u8; 4];
        reader.read_exact(&mut n).map_err(|e| err(e.to_string()))?;
        u32::from_le_bytes(n) as usize
    };
    let mut header = vec![0u8; header_len];
    reader
        .read_exact(&mut header)
        .map_err(|e| err(e.to_string()))?;
    let header = String::from_utf8_lossy(&header).to_string();
    let field = |key: &str| -> Option<String> {
        let at = header.find(&format!("'{key}'"))? + key.len() + 2;
        let rest = header[at..].trim_start().strip_prefix(':')?.trim_start();
        Some(rest.to_string())
    };
    let descr = field("descr")
        .and_then(|r| {
            r.strip_prefix('\'')
                .and_then(|r| r.split('\'').next())
                .map(str::to_string)
        })
        .ok_or_else(|| err("no dtype (descr) in the .npy header".into()))?;
    let dtype = DType::parse(&descr).ok_or_else(|| {
        err(format!(
            "unsupported dtype '{descr}' (f4, f8, i4, i8, u1, b1)"
        ))
    })?;
    if field("fortran_order").is_some_and(|r| r.starts_with("True")) {
        return Err(err(
            "Fortran-ordered arrays are not supported; save with C order".into(),
        ));
    }
    let shape: Vec<u32> = field("shape")
        .and_then(|r| {
            r.strip_prefix('(')
                .and_then(|r| r.split(')').next())
                .map(str::to_string)
        })
        .ok_or_else(|| err("no shape in the .npy header".into()))?
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            s.trim()
                .parse::<u32>()
                .map_err(|_| err(format!("bad shape entry '{s}'")))
        })
        .collect::<Result<_, _>>()?;
    let rows = *shape
        .first()
        .ok_or_else(|| err("a 0-d array has no rows".into()))?;
    let row_shape = shape[1..].to_vec();
    let row_bytes = row_shape.iter().map(|&d| d as usize).product::<usize>() * dtype.size();
    let origin = origin.to_string();
    let mut row = 0u32;
    Ok(Box::new(std::iter::from_fn(move || {
        if row >= rows {
            return None;
        }
        row += 1;
        let mut buffer = vec![0u8; row_bytes];
        if let Err(e) = reader.read_exact(&mut buffer) {
            row = rows;
            return Some(Err(InputError::new(
                &origin,
                None,
                format!("row {}: {e}", row),
            )));
        }
        let mut doc = Document::new();
        doc.tensor = Some(NdArray {
            buffer: buffer.into(),
            shape: row_shape.clone(),
            dtype: dtype.numpy().into(),
            parameters: None,
        });
        Some(Ok(doc))
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn csv_columns_go_to_fields_or_tags_and_bad_lines_are_named() {
        let text = "id,sentence,lang\n1,hello,en\n2,hallo,de\n3,oops\n";
        let resolver: FieldResolver = [("sentence".to_string(), "text".to_string())].into();
        let docs: Vec<_> = from_csv(Cursor::new(text), "d.csv", resolver).collect();
        let first = docs[0].as_ref().unwrap();
        assert_eq!(
            (first.id.as_str(), first.text.as_deref()),
            ("1", Some("hello"))
        );
        assert_eq!(first.tags["lang"], "en");
        let e = docs[2].as_ref().unwrap_err();
        assert_eq!(
            e.to_string(),
            "d.csv:4: expected 3 fields as in the header, found 2"
        );
        assert_eq!(docs.len(), 3, "reading stops at the first bad line");
    }

    #[test]
    fn files_are_counted_when_that_is_cheap() {
        let dir = std::env::temp_dir().join(format!("jina-count-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let csv = dir.join("a.csv");
        std::fs::write(&csv, "text,lang\na,en\n\"b\nc\",fr\nd,de\n").unwrap();
        let nd = dir.join("a.ndjson");
        std::fs::write(&nd, "{}\n\n{}\n").unwrap();
        assert_eq!(count(csv.to_str().unwrap(), InputFormat::Csv), Some(3));
        assert_eq!(count(nd.to_str().unwrap(), InputFormat::Ndjson), Some(2));
        assert_eq!(count("-", InputFormat::Lines), None);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn an_unclosed_quote_is_named_with_its_line() {
        let text = "text,lang\nfine,en\n\"never closed,de\nmore,fr\n";
        let docs: Vec<_> = from_csv(Cursor::new(text), "q.csv", FieldResolver::new()).collect();
        let e = docs[1].as_ref().unwrap_err();
        assert_eq!(
            e.to_string(),
            "q.csv:3: a quote opened on this line is never closed (its field runs on to the end of the file)"
        );
    }

    #[test]
    fn ndjson_names_the_bad_line() {
        let docs: Vec<_> = from_ndjson(
            Cursor::new("{\"text\": \"a\"}\n\n{\"text\": 1}\n"),
            "d.ndjson",
        )
        .collect();
        assert_eq!(docs[0].as_ref().unwrap().text.as_deref(), Some("a"));
        assert!(
            docs[1]
                .as_ref()
                .unwrap_err()
                .to_string()
                .starts_with("d.ndjson:3: "),
            "{:?}",
            docs[1]
        );
    }

    #[test]
    fn npy_rows_become_tensors() {
        let mut file = b"\x93NUMPY\x01\x00".to_vec();
        let mut header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }".to_string();
        while !(10 + header.len() + 1).is_multiple_of(64) {
            header.push(' ');
        }
        header.push('\n');
        file.extend((header.len() as u16).to_le_bytes());
        file.extend(header.as_bytes());
        for v in [1f32, 2., 3., 4., 5., 6.] {
            file.extend(v.to_le_bytes());
        }
        let docs: Vec<_> = from_ndarray(Cursor::new(file), "a.npy")
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(docs.len(), 2);
        assert_eq!(
            docs[1].tensor.as_ref().unwrap().to_f32_vec().unwrap(),
            vec![4., 5., 6.]
        );
        assert_eq!(docs[1].tensor.as_ref().unwrap().shape, vec![3]);
    }

    #[test]
    fn format_follows_the_extension() {
        assert_eq!(InputFormat::guess("a/b.csv"), Some(InputFormat::Csv));
        assert_eq!(InputFormat::guess("docs/*.txt"), Some(InputFormat::Files));
        assert_eq!(InputFormat::guess("x.jsonl"), Some(InputFormat::Ndjson));
        assert_eq!(InputFormat::guess("x.bin"), None);
    }
}
