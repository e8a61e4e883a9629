//! `wordcount`: the `jina` command line, with the `WordCount` executor of this crate beside the
//! built-ins. `wordcount flow --uses flow.yml` runs a Flow that names `jtype: WordCount`, and
//! starts its executor copies from this same binary.

fn main() -> std::process::ExitCode {
    jina::cli::main_with(jina::registry![jina_wordcount::WordCount])
}
