;; An Extism plugin in WebAssembly text: `count_vowels` writes JSON, `upper` writes text.
;; Build: wat2wasm text.wat -o text.wasm   (or wasmtime.wat2wasm in Python)
(module
  ;; Extism's kernel: the plugin's input and output live in its memory, reached by
  ;; 64-bit offsets through these functions.
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "input_load_u8" (func $input_load_u8 (param i64) (result i32)))
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))

  (memory (export "memory") 1)
  (data (i32.const 0) "{\"vowels\":")  ;; 10 bytes; digits are written at 40..60, "}" at 60

  (func $is_vowel (param $c i32) (result i32)
    (local.set $c (i32.or (local.get $c) (i32.const 32)))  ;; ASCII lower case
    (i32.or
      (i32.or
        (i32.or (i32.eq (local.get $c) (i32.const 97)) (i32.eq (local.get $c) (i32.const 101)))
        (i32.or (i32.eq (local.get $c) (i32.const 105)) (i32.eq (local.get $c) (i32.const 111))))
      (i32.eq (local.get $c) (i32.const 117))))

  ;; Copy `count` bytes of this module's memory at `src` to Extism memory at `dst`.
  (func $copy_out (param $src i32) (param $count i32) (param $dst i64)
    (local $i i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $count)))
        (call $store_u8
          (i64.add (local.get $dst) (i64.extend_i32_u (local.get $i)))
          (i32.load8_u (i32.add (local.get $src) (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next))))

  ;; {"vowels": N}: the number of ASCII vowels in the input.
  (func (export "count_vowels") (result i32)
    (local $n i64) (local $i i64) (local $count i64) (local $pos i32) (local $len i32)
    (local $out i64)
    (local.set $n (call $input_length))
    (block $done
      (loop $next
        (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
        (local.set $count
          (i64.add (local.get $count)
            (i64.extend_i32_u (call $is_vowel (call $input_load_u8 (local.get $i))))))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $next)))
    (local.set $pos (i32.const 60))
    (loop $digit
      (local.set $pos (i32.sub (local.get $pos) (i32.const 1)))
      (i32.store8 (local.get $pos)
        (i32.add (i32.const 48) (i32.wrap_i64 (i64.rem_u (local.get $count) (i64.const 10)))))
      (local.set $count (i64.div_u (local.get $count) (i64.const 10)))
      (br_if $digit (i64.ne (local.get $count) (i64.const 0))))
    (i32.store8 (i32.const 60) (i32.const 125))  ;; "}"
    (local.set $len (i32.add (i32.const 10) (i32.sub (i32.const 61) (local.get $pos))))
    (local.set $out (call $alloc (i64.extend_i32_u (local.get $len))))
    (call $copy_out (i32.const 0) (i32.const 10) (local.get $out))
    (call $copy_out (local.get $pos) (i32.sub (i32.const 61) (local.get $pos))
      (i64.add (local.get $out) (i64.const 10)))
    (call $output_set (local.get $out) (i64.extend_i32_u (local.get $len)))
    (i32.const 0))

  ;; The input with ASCII letters in upper case.
  (func (export "upper") (result i32)
    (local $n i64) (local $i i64) (local $out i64) (local $c i32)
    (local.set $n (call $input_length))
    (local.set $out (call $alloc (local.get $n)))
    (block $done
      (loop $next
        (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
        (local.set $c (call $input_load_u8 (local.get $i)))
        (if (i32.and (i32.ge_u (local.get $c) (i32.const 97)) (i32.le_u (local.get $c) (i32.const 122)))
          (then (local.set $c (i32.sub (local.get $c) (i32.const 32)))))
        (call $store_u8 (i64.add (local.get $out) (local.get $i)) (local.get $c))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $next)))
    (call $output_set (local.get $out) (local.get $n))
    (i32.const 0))
)
