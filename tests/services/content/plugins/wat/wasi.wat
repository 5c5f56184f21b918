;; A module asking for WASI: the sandbox gives none, so it is refused at upload.
(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_get" (func $fd_prestat_get (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "read_etc_passwd") (result i32)
    (call $fd_prestat_get (i32.const 3) (i32.const 0)))
)
