;; Misbehaving functions: each must end in a 422 naming its cause, and the service serves on.
(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (import "extism:host/env" "error_set" (func $error_set (param i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "no vowels today")  ;; 15 bytes

  ;; Loops until its time limit.
  (func (export "spin") (result i32)
    (loop $forever (br $forever))
    (i32.const 0))

  ;; Grows its memory a page at a time until the cap stops it.
  (func (export "grow") (result i32)
    (block $full
      (loop $more
        (br_if $full (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))
        (br $more)))
    (i32.const 0))

  (func $boom (export "trap") (result i32)
    unreachable)

  ;; Reports its own error through Extism.
  (func (export "fail") (result i32)
    (local $p i64) (local $i i32)
    (local.set $p (call $alloc (i64.const 15)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (i32.const 15)))
        (call $store_u8 (i64.add (local.get $p) (i64.extend_i32_u (local.get $i)))
          (i32.load8_u (local.get $i)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (call $error_set (local.get $p))
    (i32.const 1))

  ;; 4096 bytes of output (zeros).
  (func (export "big") (result i32)
    (call $output_set (call $alloc (i64.const 4096)) (i64.const 4096))
    (i32.const 0))

  ;; Not callable by Extism (parameters) or a toolchain entry point: never listed.
  (func (export "helper") (param i32) (result i32) (local.get 0))
  (func (export "_start"))
)
