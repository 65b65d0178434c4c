#!/usr/bin/env python3
"""tools/cuda_emu/transform.py — turn a CUDA source into C++ that the CPU emulator runs.

    transform.py kernels/cuda/layernorm.cu build/.../kernels/cuda/layernorm.cu.cpp

Only the three things g++ cannot compile are rewritten; everything else is left exactly as
written, so the emulated tests run the lab's own code:

  kernel<<<grid, block, smem, stream>>>(args)
      ->  ::emu::Launcher(kernel, "kernel", grid, block, smem, stream)(args)
  [extern] __shared__ [__align__(N) | alignas(N)] T name[dims];
      ->  auto& name = ::emu::shared_variable<T[dims], N, "file:line name">();
      ->  T* name = ::emu::dynamic_shared<T>();                       (extern: dynamic)
  asm [volatile] ("mnemonic operands;" : outputs : inputs : clobbers);
      ->  ::emu::ptx::mnemonic_with_underscores(operands in template order);

Line numbers are kept (a `#line` directive names the original file and every rewrite keeps
its newlines), so compiler errors and the emulator's messages point at the original source.
Anything the emulator cannot run faithfully — code that depends on __CUDA_ARCH__, __constant__
memory, an instruction ptx.h does not define — stops the transform with an error instead of
being compiled into something that differs from what the GPU runs. Standard library only.
"""
import os
import re
import sys

# Inline PTX that cuda_emu/ptx.h defines.
SUPPORTED_PTX = {
    "cvt.rna.tf32.f32",
    "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32",
    "ldmatrix.sync.aligned.m8n8.x4.shared.b16",
    "cp.async.ca.shared.global",
    "cp.async.cg.shared.global",
    "cp.async.commit_group",
    "cp.async.wait_group",
}

# Constructs that compile with the emulator but would not mean what they mean on the GPU.
UNSUPPORTED = {
    "__CUDA_ARCH__": "code specialised per GPU architecture (the emulator is no architecture)",
    "__constant__": "__constant__ memory",
    "__managed__": "managed memory",
}


class TransformError(Exception):
    pass


def blank_comments_and_strings(s):
    """s with comments and the insides of string/char literals replaced by spaces (newlines
    kept), so that searches for code constructs never match text in comments or strings."""
    out = list(s)
    i, n = 0, len(s)

    def blank(a, b):
        for k in range(a, b):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        if s.startswith("//", i):
            j = s.find("\n", i)
            j = n if j < 0 else j
            blank(i, j)
            i = j
        elif s.startswith("/*", i):
            j = s.find("*/", i + 2)
            j = n if j < 0 else j + 2
            blank(i, j)
            i = j
        elif s[i] in "\"'":
            q, j = s[i], i + 1
            while j < n and s[j] != q:
                j += 2 if s[j] == "\\" else 1
            blank(i + 1, j)
            i = j + 1
        else:
            i += 1
    return "".join(out)


def line_of(s, pos):
    return s.count("\n", 0, pos) + 1


def keep_newlines(original, replacement):
    """replacement followed by as many newlines as `original` had (line numbers stay put)."""
    return replacement + "\n" * original.count("\n")


def matching(code, pos, opening, closing):
    """Index just past the bracket that closes the one at code[pos]."""
    depth = 0
    for k in range(pos, len(code)):
        if code[k] == opening:
            depth += 1
        elif code[k] == closing:
            depth -= 1
            if depth == 0:
                return k + 1
    raise TransformError("unbalanced %s%s" % (opening, closing))


def split_top_level(text, sep=","):
    """Split at `sep` outside (), [], {} and <> (template arguments)."""
    parts, depth, start = [], 0, 0
    for k, c in enumerate(text):
        if c in "([{<":
            depth += 1
        elif c in ")]}>":
            depth -= 1
        elif c == sep and depth == 0:
            parts.append(text[start:k])
            start = k + 1
    parts.append(text[start:])
    return parts


def apply_edits(s, edits):
    for start, end, text in sorted(edits, reverse=True):
        s = s[:start] + text + s[end:]
    return s


# ---- kernel<<<...>>>(args) ------------------------------------------------------------------
def rewrite_launches(s, name):
    code, edits = blank_comments_and_strings(s), []
    for m in re.finditer(r"<<<", code):
        open_at = m.start()
        # The kernel expression before <<<: identifiers, ::, and one <template args> group.
        k = open_at
        while k > 0 and code[k - 1].isspace():
            k -= 1
        end_name = k
        if code[k - 1] == ">":
            depth = 0
            while k > 0:
                k -= 1
                depth += {">": 1, "<": -1}.get(code[k], 0)
                if depth == 0:
                    break
        while k > 0 and (code[k - 1].isalnum() or code[k - 1] in "_:"):
            k -= 1
        kernel = s[k:end_name]
        if not re.match(r"[A-Za-z_:]", kernel):
            raise TransformError("%s:%d: cannot find the kernel name of this launch"
                                 % (name, line_of(s, open_at)))
        close_at = code.find(">>>", open_at)
        paren = close_at + 3
        while 0 <= close_at and paren < len(code) and code[paren].isspace():
            paren += 1
        if close_at < 0 or paren >= len(code) or code[paren] != "(":
            raise TransformError("%s:%d: expected kernel<<<config>>>(arguments)"
                                 % (name, line_of(s, open_at)))
        config = s[open_at + 3:close_at]
        between = s[close_at + 3:paren]
        label = " ".join(kernel.split()).replace('"', '\\"')
        edits.append((k, paren + 1, '::emu::Launcher(%s, "%s", %s)%s('
                      % (kernel, label, config, between)))
    return apply_edits(s, edits)


# ---- __shared__ declarations ------------------------------------------------------------------
def rewrite_shared(s, name):
    code, edits = blank_comments_and_strings(s), []
    for m in re.finditer(r"(\bextern\s+)?\b__shared__\b", code):
        end = code.find(";", m.end())
        decl = code[m.end():end]
        where = "%s:%d" % (name, line_of(s, m.start()))
        align = "0"
        am = re.match(r"\s*(?:__align__|alignas)\(\s*(\d+)\s*\)", decl)
        if am:
            align, decl = am.group(1), decl[am.end():]
        if "=" in decl:
            raise TransformError(where + ": __shared__ variables cannot have initialisers")
        if re.search(r"\b(__align__|alignas)\b", decl):  # anywhere else: not what it means
            raise TransformError(where + ": write the alignment right after __shared__")
        declarators = [d.strip() for d in split_top_level(decl)]
        first = re.match(r"(.*?)([A-Za-z_]\w*)\s*((?:\[[^\]]*\]\s*)*)$", declarators[0], re.S)
        if not first or not first.group(1).strip():
            raise TransformError(where + ": cannot parse this __shared__ declaration")
        base_type = " ".join(first.group(1).split())
        out = []
        for i, d in enumerate(declarators):
            dm = first if i == 0 else re.match(r"()([A-Za-z_]\w*)\s*((?:\[[^\]]*\]\s*)*)$", d)
            if not dm:
                raise TransformError(where + ": cannot parse declarator '%s'" % d)
            var, dims = dm.group(2), "".join(dm.group(3).split())
            if m.group(1):  # extern __shared__ T name[]: the launch's dynamic shared memory
                if dims != "[]" or len(declarators) != 1:
                    raise TransformError(where + ": extern __shared__ must be `T name[]`")
                out.append("%s* %s = ::emu::dynamic_shared<%s>();" % (base_type, var, base_type))
            else:
                out.append('auto& %s = ::emu::shared_variable<%s%s, %s, "%s %s">();'
                           % (var, base_type, dims, align, where.rsplit("/", 1)[-1], var))
        original = s[m.start():end + 1]
        edits.append((m.start(), end + 1, keep_newlines(original, " ".join(out))))
    return apply_edits(s, edits)


# ---- inline PTX ---------------------------------------------------------------------------------
def c_string_contents(literals):
    text = "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', literals))
    return text.replace("\\n", "\n").replace("\\t", "\t").replace('\\"', '"')


def rewrite_asm(s, name):
    code, edits = blank_comments_and_strings(s), []
    for m in re.finditer(r"\b(?:asm|__asm__)\s*(?:(?:volatile|__volatile__)\s*)?\(", code):
        open_paren = m.end() - 1
        close = matching(code, open_paren, "(", ")")
        where = "%s:%d" % (name, line_of(s, m.start()))
        body, body_code = s[open_paren + 1:close - 1], code[open_paren + 1:close - 1]
        sections = split_top_level(body_code, ":")
        # Sections by position in the original text (the template keeps its string literals).
        bounds, pos = [], 0
        for sec in sections:
            bounds.append((pos, pos + len(sec)))
            pos += len(sec) + 1
        template = c_string_contents(body[bounds[0][0]:bounds[0][1]])
        operands = []
        for a, b in bounds[1:3]:
            for op in split_top_level(body[a:b]):
                if not op.strip():
                    continue
                om = re.match(r'\s*"([^"]*)"\s*\((.*)\)\s*$', op, re.S)
                if not om:
                    raise TransformError(where + ": cannot parse asm operand '%s'" % op.strip())
                operands.append(" ".join(om.group(2).split()))
        instructions = [t.strip() for t in template.split(";") if t.strip()]
        if len(instructions) != 1:
            raise TransformError(where + ": one PTX instruction per asm statement, got %r"
                                 % template)
        mnemonic, _, rest = instructions[0].partition(" ")
        if mnemonic not in SUPPORTED_PTX:
            raise TransformError(where + ": PTX instruction '%s' is not emulated (cuda_emu/ptx.h "
                                 "defines: %s)" % (mnemonic, ", ".join(sorted(SUPPORTED_PTX))))
        args = []
        for item in re.split(r"[,{}\[\]\s]+", rest):
            if not item:
                continue
            if re.fullmatch(r"%\d+", item):
                args.append(operands[int(item[1:])])
            elif re.fullmatch(r"-?\d+", item):
                args.append(item)
            else:
                raise TransformError(where + ": unexpected PTX operand '%s'" % item)
        call = "::emu::ptx::%s(%s)" % (mnemonic.replace(".", "_"), ", ".join(args))
        edits.append((m.start(), close, keep_newlines(s[m.start():close], call)))
    return apply_edits(s, edits)


def transform(s, path):
    name = os.path.abspath(path)
    code = blank_comments_and_strings(s)
    for word, what in UNSUPPORTED.items():
        hit = re.search(r"\b%s\b" % word, code)
        if hit:
            raise TransformError("%s:%d: %s is not emulated"
                                 % (name, line_of(s, hit.start()), what))
    s = rewrite_asm(s, name)
    s = rewrite_shared(s, name)
    s = rewrite_launches(s, name)
    left = re.search(r"<<<|>>>|\b__shared__\b|\basm\b", blank_comments_and_strings(s))
    if left:
        raise TransformError("%s:%d: could not rewrite '%s'" % (name, line_of(s, left.start()),
                                                                left.group(0)))
    return '#line 1 "%s"\n%s' % (name, s)


def main(argv):
    if len(argv) != 3:
        sys.exit("usage: transform.py INPUT.cu OUTPUT")
    src, dst = argv[1], argv[2]
    with open(src, encoding="utf-8") as f:
        text = f.read()
    try:
        out = transform(text, src)
    except TransformError as e:
        sys.exit("transform.py: error: %s" % e)
    os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
    with open(dst, "w", encoding="utf-8") as f:
        f.write(out)


if __name__ == "__main__":
    main(sys.argv)
