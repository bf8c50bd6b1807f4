// torch_pickle.cpp: see torch_pickle.h. A stack machine over a closed set of pickle opcodes
// (protocols 2 to 5); values are a small tagged tree, never Python objects.
#include "model/io/torch_pickle.h"

#include <cstring>
#include <map>
#include <memory>

#include "tnl/error.h"

namespace tnl::io {
namespace {

struct Obj;
using Ref = std::shared_ptr<Obj>;

struct Obj {
  enum class Kind { none, boolean, integer, real, string, tuple, list, dict, global, storage,
                    tensor, mark };
  Kind kind = Kind::none;
  int64_t i = 0;
  double f = 0;
  std::string s;                         // string; global "module.name"; storage key
  std::vector<Ref> items;                // tuple / list
  std::vector<std::pair<Ref, Ref>> dict; // dict, in insertion order
  PickledTensor tensor;                  // tensor; storage (dtype, key, numel)
};

Ref make(Obj::Kind k) {
  auto r = std::make_shared<Obj>();
  r->kind = k;
  return r;
}

// Typed storage classes and the element type they hold.
bool storage_dtype(const std::string& global, std::string* dtype, int64_t* elem) {
  static const std::map<std::string, std::pair<const char*, int64_t>> kTypes = {
      {"torch.FloatStorage", {"F32", 4}},  {"torch.HalfStorage", {"F16", 2}},
      {"torch.BFloat16Storage", {"BF16", 2}}, {"torch.DoubleStorage", {"F64", 8}},
      {"torch.LongStorage", {"I64", 8}},   {"torch.IntStorage", {"I32", 4}},
      {"torch.ShortStorage", {"I16", 2}},  {"torch.CharStorage", {"I8", 1}},
      {"torch.ByteStorage", {"U8", 1}},    {"torch.BoolStorage", {"BOOL", 1}}};
  auto it = kTypes.find(global);
  if (it == kTypes.end()) return false;
  *dtype = it->second.first;
  *elem = it->second.second;
  return true;
}

class Unpickler {
 public:
  Unpickler(const unsigned char* d, size_t n, const std::string& src) : p_(d), end_(d + n), src_(src) {}

  Ref run() {
    while (true) {
      const unsigned char op = byte();
      switch (op) {
        case 0x80: byte(); break;                           // PROTO
        case 0x95: take(8); break;                          // FRAME
        case '.': return pop();                             // STOP
        case '(': push(make(Obj::Kind::mark)); break;       // MARK
        case 'N': push(make(Obj::Kind::none)); break;
        case 0x88: push(boolean(true)); break;              // NEWTRUE
        case 0x89: push(boolean(false)); break;             // NEWFALSE
        case 'K': push(integer(byte())); break;             // BININT1
        case 'M': push(integer((int64_t)le(2))); break;     // BININT2
        case 'J': push(integer((int32_t)le(4))); break;     // BININT
        case 0x8a: push(long1()); break;                    // LONG1
        case 'G': push(binfloat()); break;                  // BINFLOAT
        case 'X': push(str(le(4))); break;                  // BINUNICODE
        case 0x8c: push(str(byte())); break;                // SHORT_BINUNICODE
        case 0x8d: push(str(le(8))); break;                 // BINUNICODE8
        case 'U': push(str(byte())); break;                 // SHORT_BINSTRING
        case 'T': push(str(le(4))); break;                  // BINSTRING
        case 'C': push(str(byte())); break;                 // SHORT_BINBYTES
        case 'B': push(str(le(4))); break;                  // BINBYTES
        case ')': push(make(Obj::Kind::tuple)); break;      // EMPTY_TUPLE
        case 0x85: tuple_n(1); break;                       // TUPLE1
        case 0x86: tuple_n(2); break;                       // TUPLE2
        case 0x87: tuple_n(3); break;                       // TUPLE3
        case 't': push(tuple_mark()); break;                // TUPLE
        case ']': push(make(Obj::Kind::list)); break;       // EMPTY_LIST
        case '}': push(make(Obj::Kind::dict)); break;       // EMPTY_DICT
        case 'a': append(); break;                          // APPEND
        case 'e': appends(); break;                         // APPENDS
        case 's': setitem(); break;                         // SETITEM
        case 'u': setitems(); break;                        // SETITEMS
        case 'q': memo_[byte()] = top(); break;             // BINPUT
        case 'r': memo_[le(4)] = top(); break;              // LONG_BINPUT
        case 0x94: memo_[memo_.size()] = top(); break;      // MEMOIZE
        case 'h': push(get(byte())); break;                 // BINGET
        case 'j': push(get(le(4))); break;                  // LONG_BINGET
        case 'c': {                                         // GLOBAL
          const std::string module = line();  // two reads, in this order
          push(global(module, line()));
          break;
        }
        case 0x93: stack_global(); break;                   // STACK_GLOBAL
        case 'Q': push(persistent_load(pop())); break;      // BINPERSID
        case 'R': reduce(); break;                          // REDUCE
        case 'b': build(); break;                           // BUILD
        default:
          fail(detail::cat("unsupported pickle opcode 0x", std::hex, (int)op,
                           " (not something a state dict needs)"));
      }
    }
  }

 private:
  const unsigned char* p_;
  const unsigned char* end_;
  const std::string& src_;
  std::vector<Ref> stack_;
  std::map<uint64_t, Ref> memo_;

  [[noreturn]] void fail(const std::string& what) const {
    throw Error(detail::cat(src_, ": cannot load the checkpoint's pickle: ", what));
  }
  const unsigned char* take(uint64_t n) {
    if (n > (uint64_t)(end_ - p_)) fail("truncated pickle");
    const unsigned char* at = p_;
    p_ += n;
    return at;
  }
  unsigned byte() { return *take(1); }
  uint64_t le(int n) {
    const unsigned char* b = take(n);
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | b[i];
    return v;
  }
  std::string line() {
    const unsigned char* nl = static_cast<const unsigned char*>(std::memchr(p_, '\n', end_ - p_));
    if (!nl) fail("truncated GLOBAL");
    std::string s(reinterpret_cast<const char*>(p_), nl - p_);
    p_ = nl + 1;
    return s;
  }
  void push(Ref r) {
    if (stack_.size() > 100000) fail("pickle stack too deep");
    stack_.push_back(std::move(r));
  }
  Ref pop() {
    if (stack_.empty()) fail("pickle stack underflow");
    Ref r = stack_.back();
    stack_.pop_back();
    return r;
  }
  Ref top() {
    if (stack_.empty()) fail("pickle stack underflow");
    return stack_.back();
  }
  Ref get(uint64_t k) {
    auto it = memo_.find(k);
    if (it == memo_.end()) fail(detail::cat("memo key ", k, " not found"));
    return it->second;
  }
  std::vector<Ref> pop_to_mark() {
    std::vector<Ref> out;
    while (true) {
      Ref r = pop();
      if (r->kind == Obj::Kind::mark) break;
      out.insert(out.begin(), r);
    }
    return out;
  }
  static Ref boolean(bool b) {
    Ref r = make(Obj::Kind::boolean);
    r->i = b;
    return r;
  }
  static Ref integer(int64_t v) {
    Ref r = make(Obj::Kind::integer);
    r->i = v;
    return r;
  }
  Ref long1() {
    const unsigned n = byte();
    if (n > 8) fail("integer wider than 64 bits");
    const unsigned char* b = take(n);
    uint64_t v = 0;
    for (int i = (int)n - 1; i >= 0; --i) v = (v << 8) | b[i];
    if (n > 0 && n < 8 && (b[n - 1] & 0x80)) v |= ~uint64_t(0) << (8 * n);  // sign-extend
    return integer((int64_t)v);
  }
  Ref binfloat() {
    const unsigned char* b = take(8);
    uint64_t bits = 0;
    for (int i = 0; i < 8; ++i) bits = (bits << 8) | b[i];  // big-endian
    Ref r = make(Obj::Kind::real);
    std::memcpy(&r->f, &bits, 8);
    return r;
  }
  Ref str(uint64_t n) {
    Ref r = make(Obj::Kind::string);
    const unsigned char* b = take(n);
    r->s.assign(reinterpret_cast<const char*>(b), n);
    return r;
  }
  void tuple_n(int n) {
    Ref t = make(Obj::Kind::tuple);
    t->items.resize(n);
    for (int i = n - 1; i >= 0; --i) t->items[i] = pop();
    push(t);
  }
  Ref tuple_mark() {
    Ref t = make(Obj::Kind::tuple);
    t->items = pop_to_mark();
    return t;
  }
  void append() {
    Ref v = pop();
    Ref l = top();
    if (l->kind != Obj::Kind::list) fail("APPEND to a non-list");
    l->items.push_back(v);
  }
  void appends() {
    std::vector<Ref> vs = pop_to_mark();
    Ref l = top();
    if (l->kind != Obj::Kind::list) fail("APPENDS to a non-list");
    for (auto& v : vs) l->items.push_back(v);
  }
  void setitem() {
    Ref v = pop(), k = pop();
    Ref d = top();
    if (d->kind != Obj::Kind::dict) fail("SETITEM on a non-dict");
    d->dict.emplace_back(k, v);
  }
  void setitems() {
    std::vector<Ref> kv = pop_to_mark();
    Ref d = top();
    if (d->kind != Obj::Kind::dict || kv.size() % 2) fail("SETITEMS on a non-dict");
    for (size_t i = 0; i < kv.size(); i += 2) d->dict.emplace_back(kv[i], kv[i + 1]);
  }
  Ref global(const std::string& module, const std::string& name) {
    static const char* kAllowed[] = {"collections.OrderedDict", "torch._utils._rebuild_tensor_v2",
                                     "torch._utils._rebuild_parameter"};
    const std::string full = module + "." + name;
    std::string dt;
    int64_t es = 0;
    bool ok = storage_dtype(full, &dt, &es);
    for (const char* a : kAllowed) ok = ok || full == a;
    if (!ok)
      fail(detail::cat("forbidden global '", full,
                       "': a state dict needs only tensors, storages and OrderedDict; "
                       "this file may try to run code and was not loaded"));
    Ref g = make(Obj::Kind::global);
    g->s = full;
    return g;
  }
  void stack_global() {
    Ref name = pop(), module = pop();
    if (name->kind != Obj::Kind::string || module->kind != Obj::Kind::string)
      fail("STACK_GLOBAL expects two strings");
    push(global(module->s, name->s));
  }
  int64_t as_int(const Ref& r, const char* what) {
    if (r->kind != Obj::Kind::integer) fail(detail::cat(what, ": expected an integer"));
    return r->i;
  }
  const std::vector<Ref>& as_tuple(const Ref& r, const char* what) {
    if (r->kind != Obj::Kind::tuple) fail(detail::cat(what, ": expected a tuple"));
    return r->items;
  }
  // ('storage', storage_type, key, location, numel)
  Ref persistent_load(const Ref& pid) {
    const std::vector<Ref>& t = as_tuple(pid, "persistent id");
    if (t.size() != 5 || t[0]->kind != Obj::Kind::string || t[0]->s != "storage" ||
        t[1]->kind != Obj::Kind::global || t[2]->kind != Obj::Kind::string)
      fail("unsupported persistent id (expected ('storage', type, key, location, numel))");
    Ref s = make(Obj::Kind::storage);
    if (!storage_dtype(t[1]->s, &s->tensor.dtype, &s->tensor.elem_size))
      fail(detail::cat("'", t[1]->s, "' is not a storage type"));
    s->tensor.storage_key = t[2]->s;
    s->tensor.storage_numel = as_int(t[4], "storage numel");
    return s;
  }
  std::vector<int64_t> int_tuple(const Ref& r, const char* what) {
    std::vector<int64_t> out;
    for (const Ref& x : as_tuple(r, what)) out.push_back(as_int(x, what));
    return out;
  }
  void reduce() {
    Ref args = pop(), fn = pop();
    if (fn->kind != Obj::Kind::global) fail("REDUCE of something that is not a callable");
    const std::vector<Ref>& a = as_tuple(args, "REDUCE arguments");
    if (fn->s == "collections.OrderedDict") {
      if (!a.empty()) fail("OrderedDict with arguments");
      push(make(Obj::Kind::dict));
    } else if (fn->s == "torch._utils._rebuild_tensor_v2") {
      if (a.size() < 4 || a[0]->kind != Obj::Kind::storage) fail("bad _rebuild_tensor_v2 arguments");
      Ref t = make(Obj::Kind::tensor);
      t->tensor = a[0]->tensor;
      t->tensor.storage_offset = as_int(a[1], "storage offset");
      t->tensor.shape = int_tuple(a[2], "tensor size");
      t->tensor.stride = int_tuple(a[3], "tensor stride");
      if (t->tensor.shape.size() != t->tensor.stride.size()) fail("size and stride differ in rank");
      push(t);
    } else if (fn->s == "torch._utils._rebuild_parameter") {
      if (a.empty() || a[0]->kind != Obj::Kind::tensor) fail("bad _rebuild_parameter arguments");
      push(a[0]);
    } else {
      fail(detail::cat("'", fn->s, "' cannot be called"));
    }
  }
  void build() {
    Ref state = pop();
    Ref obj = top();
    // OrderedDict's attributes (state dicts carry _metadata): accepted and dropped.
    if (obj->kind != Obj::Kind::dict ||
        (state->kind != Obj::Kind::dict && state->kind != Obj::Kind::none))
      fail("BUILD on something other than a dict");
  }
};

}  // namespace

std::vector<PickledTensor> unpickle_state_dict(const unsigned char* data, size_t size,
                                               const std::string& source) {
  Ref root = Unpickler(data, size, source).run();
  if (root->kind != Obj::Kind::dict)
    throw Error(detail::cat(source, ": the checkpoint is not a state dict (top level is not a dict)"));
  std::vector<PickledTensor> out;
  for (const auto& [k, v] : root->dict) {
    if (k->kind != Obj::Kind::string)
      throw Error(detail::cat(source, ": a state-dict key is not a string"));
    if (v->kind != Obj::Kind::tensor)
      throw Error(detail::cat(source, ": state-dict entry '", k->s, "' is not a tensor"));
    PickledTensor t = v->tensor;
    t.name = k->s;
    out.push_back(std::move(t));
  }
  return out;
}

}  // namespace tnl::io
