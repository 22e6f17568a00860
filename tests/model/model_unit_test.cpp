// Serial unit tests of src/model that need no reference data: the checkpoint reader on archives written by
// LibTorch itself and on hand-assembled pickles, the strict loader, TorchScript adapters, seeded random models,
// and the attention / time-embedding / quantiser arithmetic against straightforward float64 references.
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <caffe2/serialize/inline_container.h>
#include <gtest/gtest.h>
#include <torch/csrc/jit/serialization/pickle.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <string>

#include "config/model_config.hpp"
#include "core/error.hpp"
#include "model/checkpoint.hpp"
#include "model/decoder.hpp"
#include "model/loader.hpp"
#include "model/parallel_ops.hpp"
#include "model/unet.hpp"
#include "sampler/schedule.hpp"
#include "test_support.hpp"

namespace adaptdiff::model {
namespace {

using test::max_abs;
using test::kTinyModel;
using test::module_state;
using test::TempFile;
using test::write_with_libtorch;

config::ModelConfig tiny_config() { return config::parse_model_config(kTinyModel, "inline-tiny.toml"); }

/// Asserts that `fn` throws ModelError whose message contains every string in `parts`; returns the message.
template <typename Fn>
std::string expect_model_error(Fn fn, std::initializer_list<std::string> parts) {
  try {
    fn();
  } catch (const ModelError& e) {
    const std::string msg = e.what();
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
    return msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected ModelError, got another exception: " << e.what();
    return "";
  }
  ADD_FAILURE() << "expected ModelError, nothing was thrown";
  return "";
}

// ---- hand-assembled pickles ---------------------------------------------------------------------------------

std::string u32(uint32_t v) { return std::string(reinterpret_cast<const char*>(&v), 4); }
std::string str(const std::string& s) { return "X" + u32(static_cast<uint32_t>(s.size())) + s; }  // BINUNICODE
std::string sstr(const std::string& s) { return "\x8c" + std::string(1, static_cast<char>(s.size())) + s; }
std::string global(const std::string& mod, const std::string& name) { return "c" + mod + "\n" + name + "\n"; }
std::string int1(int v) { return "K" + std::string(1, static_cast<char>(v)); }
const std::string kMark = "(", kTuple = "t", kEmptyTuple = ")", kReduce = "R", kStop = ".", kEmptyDict = "}";

/// Zip archive in torch.save layout with the given data.pkl and storage records.
void write_archive(const std::string& path, const std::string& pkl,
                   const std::vector<std::pair<std::string, std::string>>& records) {
  caffe2::serialize::PyTorchStreamWriter w(path);
  w.writeRecord("data.pkl", pkl.data(), pkl.size());
  for (const auto& [name, bytes] : records) w.writeRecord(name, bytes.data(), bytes.size());
  w.writeEndOfFile();
}

/// `_rebuild_tensor_v2((storage, <type>, key, 'cpu', numel), offset, size, stride, False, OrderedDict())`
std::string tensor_pickle(const std::string& storage_type, const std::string& key, int numel, int offset,
                          const std::vector<int>& size, const std::vector<int>& stride) {
  std::string p = global("torch._utils", "_rebuild_tensor_v2") + kMark;
  p += kMark + str("storage") + global("torch", storage_type) + str(key) + str("cpu") + int1(numel) + kTuple + "Q";
  p += int1(offset) + kMark;
  for (int s : size) p += int1(s);
  p += kTuple + kMark;
  for (int s : stride) p += int1(s);
  p += kTuple + "\x89" + global("collections", "OrderedDict") + kEmptyTuple + kReduce + kTuple + kReduce;
  return p;
}

std::string doubles(int n) {
  std::string out(static_cast<size_t>(n) * 8, '\0');
  for (int i = 0; i < n; ++i) {
    const double v = i;
    std::memcpy(out.data() + 8 * i, &v, 8);
  }
  return out;
}

// ---- checkpoint reader --------------------------------------------------------------------------------------

TEST(Checkpoint, ReadsLibTorchWrittenDictWithViewsAndDtypes) {
  TempFile file("roundtrip.pt");
  const torch::Tensor base = torch::arange(24, torch::kFloat).view({4, 6});
  const std::vector<std::pair<std::string, torch::Tensor>> items = {
      {"a.weight", base.slice(1, 1, 4)},  // offset 1, size (4, 3), stride (6, 1) into a 24-element storage
      {"b", torch::arange(5, torch::kLong) - 2},
      {"c", torch::tensor({0.5, -1.25}, torch::kDouble)},
      {"d", torch::tensor({1.5f, -2.0f}).to(torch::kHalf)},
      {"e.t", base.t()},  // transposed view
  };
  write_with_libtorch(file.path(), items);
  const StateDict sd = read_state_dict(file.path());
  ASSERT_EQ(sd.size(), items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    SCOPED_TRACE(items[i].first);
    EXPECT_EQ(sd[i].first, items[i].first);  // file order
    EXPECT_EQ(sd[i].second.scalar_type(), items[i].second.scalar_type());
    EXPECT_TRUE(torch::equal(sd[i].second, items[i].second));
    EXPECT_TRUE(sd[i].second.is_contiguous());
    // Owns exactly its own elements (copied out of the record, not a view of the whole storage).
    EXPECT_EQ(sd[i].second.storage().nbytes(), static_cast<size_t>(sd[i].second.numel()) * sd[i].second.element_size());
  }
}

TEST(Checkpoint, HandAssembledOrderedDictWithMetadataAndManyOpcodes) {
  TempFile file("handmade.pt");
  std::string p = "\x80\x04";                                                          // PROTO 4
  p += "\x95" + std::string(8, '\0');                                                  // FRAME (ignored)
  p += global("collections", "OrderedDict") + kEmptyTuple + kReduce + "\x94";         // memo 0 = the root
  p += kMark;
  // entry 1: transposed double view via STACK_GLOBAL + MEMOIZE (memo 1 = _rebuild_tensor_v2)
  p += sstr("w") + sstr("torch._utils") + sstr("_rebuild_tensor_v2") + "\x93" + "\x94" + kMark;
  p += kMark + str("storage") + global("torch", "DoubleStorage") + str("0") + str("cpu") + int1(12) + kTuple + "Q";
  p += int1(2) + kMark + int1(2) + int1(3) + kTuple + kMark + int1(1) + int1(3) + kTuple;
  p += "\x88" + kEmptyDict + kTuple + kReduce;                                         // requires_grad True, hooks {}
  // entry 2: BINGET of the memoized global, 7-argument form (metadata dict), LongStorage
  p += str("n.b") + "h\x01" + kMark;
  p += kMark + str("storage") + global("torch", "LongStorage") + str("1") + str("cpu") + int1(4) + kTuple + "Q";
  p += int1(0) + int1(4) + "\x85" + int1(1) + "\x85" + "\x89" + kEmptyDict + kEmptyDict + kTuple + kReduce;
  p += "u";                                                                            // SETITEMS
  // BUILD state like OrderedDict's _metadata, exercising the remaining value opcodes; must be ignored.
  p += kEmptyDict + sstr("_metadata") + "]" + kMark + "G" + std::string("\x3f\xf8\0\0\0\0\0\0", 8) +
       "\x8a\x02\xd4\xfe" + "N" + "J" + u32(static_cast<uint32_t>(-5)) + "M\xbc\x02" + int1(1) + int1(2) +
       int1(3) + "\x87" + "e" + "s" + "b" + kStop;
  const std::string longs = [] {
    std::string s(32, '\0');
    for (int64_t i = 0; i < 4; ++i) {
      const int64_t v = 10 * i - 7;
      std::memcpy(s.data() + 8 * i, &v, 8);
    }
    return s;
  }();
  write_archive(file.path(), p, {{"data/0", doubles(12)}, {"data/1", longs}});
  const StateDict sd = read_state_dict(file.path());
  ASSERT_EQ(sd.size(), 2u);
  EXPECT_EQ(sd[0].first, "w");
  const torch::Tensor ref = torch::arange(12, torch::kDouble).as_strided({2, 3}, {1, 3}, 2);  // [[2,5,8],[3,6,9]]
  EXPECT_TRUE(torch::equal(sd[0].second, ref));
  EXPECT_EQ(sd[1].first, "n.b");
  EXPECT_TRUE(torch::equal(sd[1].second, torch::tensor({-7, 3, 13, 23}, torch::kLong)));
}

TEST(Checkpoint, RejectsUnsupportedContentNamingTheFile) {
  TempFile file("bad.pt");
  auto check = [&](const std::string& pkl, const std::vector<std::pair<std::string, std::string>>& records,
                   std::initializer_list<std::string> parts) {
    write_archive(file.path(), pkl, records);
    std::vector<std::string> all(parts);
    all.push_back(file.path());
    try {
      read_state_dict(file.path());
      ADD_FAILURE() << "no error for parts[0]=" << all[0];
    } catch (const ModelError& e) {
      for (const auto& s : all) EXPECT_NE(std::string(e.what()).find(s), std::string::npos) << e.what();
    }
  };
  const std::string proto = "\x80\x02";
  check(proto + "]" + kStop, {}, {"root is a list"});
  check(proto + global("builtins", "eval") + kStop, {}, {"unsupported global 'builtins.eval'"});
  check(proto + "I1\n" + kStop, {}, {"unsupported pickle opcode 0x49 ('I')"});
  check(proto + kEmptyDict + str("k") + int1(3) + "s" + kStop, {}, {"entry 'k' is a int"});
  check(proto + kEmptyDict + int1(1) + tensor_pickle("FloatStorage", "0", 1, 0, {1}, {1}) + "s" + kStop,
        {{"data/0", std::string(4, '\0')}}, {"key of type int"});
  check(proto + kEmptyDict + str("k"), {}, {"truncated pickle"});
  check(proto + kEmptyDict + str("k") + tensor_pickle("FloatStorage", "0", 4, 0, {4}, {1}) + "s" + kStop, {},
        {"storage record 'data/0' is missing"});
  check(proto + kEmptyDict + str("k") + tensor_pickle("FloatStorage", "0", 4, 1, {4}, {1}) + "s" + kStop,
        {{"data/0", std::string(16, '\0')}}, {"exceeds its storage of 4 elements"});
  check(proto + kEmptyDict + str("k") + tensor_pickle("FloatStorage", "0", 4, 0, {4}, {1}) + "s" + kStop,
        {{"data/0", std::string(8, '\0')}}, {"holds 8 bytes, expected 16"});
  check(proto + kEmptyDict + str("k") + tensor_pickle("QInt8Storage", "0", 4, 0, {4}, {1}) + "s" + kStop,
        {{"data/0", std::string(4, '\0')}}, {"unsupported global 'torch.QInt8Storage'"});
}

TEST(Checkpoint, NonZipTruncatedAndMissingFilesGiveModelErrorNamingTheFile) {
  TempFile good("good.pt");
  write_with_libtorch(good.path(), {{"x", torch::randn({64, 64})}, {"y", torch::randn({8})}});
  ASSERT_EQ(read_state_dict(good.path()).size(), 2u);
  const std::string bytes = test::read_bytes(good.path());

  TempFile truncated("truncated.pt");
  truncated.write(bytes.substr(0, bytes.size() / 2));
  expect_model_error([&] { read_state_dict(truncated.path()); }, {truncated.path(), "not a readable PyTorch zip"});

  TempFile garbage("garbage.pt");
  garbage.write(std::string("this is not a zip archive, just text\n") + std::string(300, 'x'));
  expect_model_error([&] { read_state_dict(garbage.path()); }, {garbage.path()});

  TempFile empty("empty.pt");
  empty.write("");
  expect_model_error([&] { read_state_dict(empty.path()); }, {empty.path()});

  expect_model_error([] { read_state_dict("/nonexistent/dir/model.ckpt"); },
                     {"/nonexistent/dir/model.ckpt", "no such file"});
}

// ---- strict loading -----------------------------------------------------------------------------------------

TEST(LoadStrict, OneErrorNamesMissingUnexpectedAndMismatchedKeysAndCopiesNothing) {
  const auto cfg = tiny_config();
  ConditionalUNet net(cfg.unet);
  StateDict sd = module_state(*net);
  for (auto& [k, v] : sd) v.add_(1.0);  // different from the net's values, to see whether anything was copied
  const torch::Tensor before = net->named_parameters()["final.bias"].clone();

  StateDict bad;
  for (const auto& [k, v] : sd) {
    if (k == "time_emb.lin1.bias") continue;                                        // missing
    if (k == "up.0.attn.c_proj_in.weight") {
      bad.emplace_back(k, torch::zeros({v.size(0) + 1, v.size(1)}));               // wrong shape
      continue;
    }
    if (k == "norm.weight") {
      bad.emplace_back(k, v.to(torch::kDouble));                                     // wrong dtype
      continue;
    }
    bad.emplace_back(k, v);
  }
  bad.emplace_back("down.0.res.extra.weight", torch::zeros({3}));                   // unexpected
  const std::string msg = expect_model_error(
      [&] { load_strict(*net, bad, "unit-test dict", "check the config"); },
      {"load_strict(unit-test dict)", "1 missing", "1 unexpected", "2 shape/dtype mismatch", "time_emb.lin1.bias",
       "down.0.res.extra.weight", "up.0.attn.c_proj_in.weight: expected [1024, 64] float32, found [1025, 64] float32",
       "norm.weight: expected [32] float32, found [32] float64", "---> HINT: check the config"});
  EXPECT_TRUE(torch::equal(net->named_parameters()["final.bias"], before)) << "a failed load must copy nothing";

  load_strict(*net, sd, "clean dict");
  for (const auto& [k, v] : sd) EXPECT_TRUE(torch::equal(net->named_parameters()[k], v)) << k;
}

TEST(Loader, BareAndWrapperDictsLoadAndGiveTheSameEps) {
  const auto cfg = tiny_config();
  ConditionalUNet net(cfg.unet);
  net->eval();
  const StateDict bare = module_state(*net);

  TempFile bare_file("bare.pt");
  write_with_libtorch(bare_file.path(), bare);
  StateDict wrapped;
  for (size_t i = 0; i < schedule_buffer_names().size(); ++i)
    wrapped.emplace_back(schedule_buffer_names()[i], torch::full({1000}, static_cast<float>(i)));
  for (const auto& [k, v] : bare) wrapped.emplace_back("eps_model." + k, v);
  TempFile wrapped_file("wrapped.pt");
  write_with_libtorch(wrapped_file.path(), wrapped);

  StateDict sched{{"stale", torch::zeros({1})}};
  auto from_bare = load_idiff_face_unet(cfg, bare_file.path(), torch::kCPU, &sched);
  EXPECT_TRUE(sched.empty()) << "a bare UNet dict has no schedule buffers";
  auto from_wrapped = load_idiff_face_unet(cfg, wrapped_file.path(), torch::kCPU, &sched);
  ASSERT_EQ(sched.size(), 8u);
  for (size_t i = 0; i < 8; ++i) {
    EXPECT_EQ(sched[i].first, schedule_buffer_names()[i]);
    EXPECT_TRUE(torch::equal(sched[i].second, torch::full({1000}, static_cast<float>(i))));
  }
  EXPECT_EQ(from_bare->context_dim(), 512);

  const auto [x, t, c, ref] = test::forward_case(net, 5, 3, 700);
  // Same weights, same CPU kernels: bitwise equal.
  EXPECT_TRUE(torch::equal(from_bare->eps(x, t, c), ref));
  EXPECT_TRUE(torch::equal(from_wrapped->eps(x, t, c), ref));
  EXPECT_FALSE(from_wrapped->eps(x, t, c).requires_grad());
}

TEST(Loader, WrapperWithoutAScheduleBufferAndWrongConfigAreReportedWithHint) {
  const auto cfg = tiny_config();
  ConditionalUNet net(cfg.unet);
  StateDict wrapped;
  for (const auto& name : schedule_buffer_names())
    if (name != "sigmas") wrapped.emplace_back(name, torch::zeros({1000}));
  for (const auto& [k, v] : module_state(*net)) wrapped.emplace_back("eps_model." + k, v);
  TempFile f("nosigmas.pt");
  write_with_libtorch(f.path(), wrapped);
  expect_model_error([&] { load_idiff_face_unet(cfg, f.path(), torch::kCPU); },
                     {f.path(), "1 missing", "sigmas [1000] float32", "[unet] section of 'inline-tiny.toml'"});

  // A model description with another context width does not fit this checkpoint.
  std::string other_text = kTinyModel;
  other_text.replace(other_text.find("context_channels = 64"), 21, "context_channels = 96");
  const auto other = config::parse_model_config(other_text, "other.toml");
  TempFile g("bare.pt");
  write_with_libtorch(g.path(), module_state(*net));
  expect_model_error([&] { load_idiff_face_unet(other, g.path(), torch::kCPU); },
                     {g.path(), "context_emb.weight: expected [96, 512] float32, found [64, 512] float32",
                      "---> HINT: does the [unet] section of 'other.toml' describe this checkpoint?"});

  VQDecoder dec(cfg.decoder);
  StateDict dsd = module_state(*dec);
  dsd.erase(dsd.begin());
  TempFile h("dec.pt");
  write_with_libtorch(h.path(), dsd);
  expect_model_error([&] { load_vq_decoder(cfg, h.path(), torch::kCPU); },
                     {h.path(), "decoder.conv_in.weight", "[decoder] section of 'inline-tiny.toml'"});
}

// ---- TorchScript --------------------------------------------------------------------------------------------

TEST(TorchScript, DenoiserAndDecoderLoadAndRun) {
  torch::jit::Module den("TestDenoiser");
  den.define(R"(
def forward(self, x_t, t, context: Optional[Tensor]):
    out = x_t * 0.5 + t.float().view(-1, 1, 1, 1)
    if context is not None:
        out = out + context.sum(1).view(-1, 1, 1, 1)
    return out
)");
  TempFile den_file("den.pt");
  den.save(den_file.path());
  TorchScriptProbe probe;
  probe.latent_height = probe.latent_width = 8;
  auto d = load_torchscript_denoiser(den_file.path(), torch::kCPU, probe);
  EXPECT_EQ(d->context_dim(), 512);
  const torch::Tensor x = torch::randn({3, 3, 8, 8});
  const torch::Tensor t = torch::tensor({0, 10, 999}, torch::kLong);
  const torch::Tensor c = torch::randn({3, 512});
  const torch::Tensor ref = x * 0.5 + t.to(torch::kFloat).view({-1, 1, 1, 1}) + c.sum(1).view({-1, 1, 1, 1});
  EXPECT_LE(max_abs(d->eps(x, t, c), ref), 1e-5);  // float32 sums of 512 values ~ N(0,1): rounding ~1e-6
  EXPECT_LE(max_abs(d->eps(x, t, torch::Tensor()), x * 0.5 + t.to(torch::kFloat).view({-1, 1, 1, 1})), 0.0);

  torch::jit::Module dec("TestDecoder");
  dec.define(R"(
def forward(self, z):
    return torch.tanh(z).repeat(1, 1, 4, 4)
)");
  TempFile dec_file("dec.pt");
  dec.save(dec_file.path());
  auto l = load_torchscript_decoder(dec_file.path(), torch::kCPU, probe);
  const torch::Tensor z = torch::randn({2, 3, 8, 8});
  EXPECT_TRUE(torch::equal(l->decode(z), torch::tanh(z).repeat({1, 1, 4, 4})));
}

TEST(TorchScript, WrongSignatureOrOutputShapeIsAModelError) {
  torch::jit::Module wrong_shape("WrongShape");
  wrong_shape.define(R"(
def forward(self, x_t, t, context: Optional[Tensor]):
    return x_t[:, :1]
)");
  TempFile a("wrong_shape.pt");
  wrong_shape.save(a.path());
  expect_model_error([&] { load_torchscript_denoiser(a.path(), torch::kCPU); },
                     {a.path(), "probe forward", "[2, 1, 32, 32] float32",
                      "expected a floating eps of shape [2, 3, 32, 32]"});

  torch::jit::Module wrong_arity("WrongArity");
  wrong_arity.define(R"(
def forward(self, x):
    return x
)");
  TempFile b("wrong_arity.pt");
  wrong_arity.save(b.path());
  expect_model_error([&] { load_torchscript_denoiser(b.path(), torch::kCPU); }, {b.path(), "forward failed"});

  torch::jit::Module wrong_dec("WrongDecoder");
  wrong_dec.define(R"(
def forward(self, z):
    return z.sum(1)
)");
  TempFile c("wrong_dec.pt");
  wrong_dec.save(c.path());
  expect_model_error([&] { load_torchscript_decoder(c.path(), torch::kCPU); }, {c.path(), "expected an image"});

  TempFile d("not_a_script.pt");
  d.write("garbage");
  expect_model_error([&] { load_torchscript_denoiser(d.path(), torch::kCPU); },
                     {d.path(), "cannot load TorchScript file"});
}

// ---- seeded random models -----------------------------------------------------------------------------------

TEST(RandomModels, SameSeedSameWeightsDifferentSeedDifferentAndGlobalRngUntouched) {
  const auto cfg = tiny_config();
  torch::manual_seed(99);
  const torch::Tensor expected_stream = torch::rand({4});
  torch::manual_seed(99);
  auto a = random_idiff_face_unet(cfg, 7, torch::kCPU);
  auto ad = random_vq_decoder(cfg, 7, torch::kCPU);
  EXPECT_TRUE(torch::equal(torch::rand({4}), expected_stream)) << "building random models moved the global RNG";
  auto b = random_idiff_face_unet(cfg, 7, torch::kCPU);
  auto c = random_idiff_face_unet(cfg, 8, torch::kCPU);

  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(3);
  const torch::Tensor x = torch::randn({2, 3, 16, 16}, gen);
  const torch::Tensor t = torch::tensor({999, 1}, torch::kLong);
  const torch::Tensor ctx = torch::randn({2, 512}, gen);
  const torch::Tensor ea = a->eps(x, t, ctx);
  EXPECT_TRUE(torch::equal(ea, b->eps(x, t, ctx)));
  EXPECT_GT(max_abs(ea, c->eps(x, t, ctx)), 1e-3);
  // Well-behaved: finite, O(0.01..10), depends on the context and on t.
  EXPECT_TRUE(torch::isfinite(ea).all().item<bool>());
  const double mag = ea.abs().max().item<double>();
  EXPECT_GT(mag, 1e-2);
  EXPECT_LT(mag, 10.0);
  EXPECT_GT(max_abs(ea, a->eps(x, t, torch::Tensor())), 1e-5);
  EXPECT_GT(max_abs(ea, a->eps(x, t.flip(0), ctx)), 1e-5);

  auto bd = random_vq_decoder(cfg, 7, torch::kCPU);
  auto cd = random_vq_decoder(cfg, 8, torch::kCPU);
  const torch::Tensor z = torch::randn({2, 3, 16, 16}, gen);
  const torch::Tensor img = ad->decode(z);
  EXPECT_EQ(img.sizes(), (std::vector<int64_t>{2, 3, 32, 32}));
  EXPECT_TRUE(torch::equal(img, bd->decode(z)));
  EXPECT_GT(max_abs(img, cd->decode(z)), 1e-3);
  EXPECT_TRUE(torch::isfinite(img).all().item<bool>());
  EXPECT_LT(img.abs().max().item<double>(), 10.0);
}

// ---- arithmetic against float64 references ------------------------------------------------------------------

TEST(UNetParts, MultiHeadAttentionMatchesPerHeadReference) {
  torch::manual_seed(11);
  const int64_t I = 64, Ck = 32, heads = 4, hc = 16;
  MultiHeadAttention mha(I, Ck, heads, hc);
  const torch::Tensor q_in = torch::randn({2, I, 10});
  const torch::Tensor kv_in = torch::randn({2, Ck, 7});
  torch::Tensor out;
  {
    torch::NoGradGuard g;
    out = mha(q_in, kv_in);
  }
  auto P = mha->named_parameters();
  auto w = [&](const std::string& k) { return P[k + ".weight"].detach().to(torch::kDouble).squeeze(-1); };
  auto b = [&](const std::string& k) { return P[k + ".bias"].detach().to(torch::kDouble).unsqueeze(1); };
  for (int64_t n = 0; n < 2; ++n) {
    const torch::Tensor xq = q_in[n].to(torch::kDouble), xkv = kv_in[n].to(torch::kDouble);
    const torch::Tensor q = w("to_q").mm(xq) + b("to_q"), k = w("to_k").mm(xkv) + b("to_k"),
                        v = w("to_v").mm(xkv) + b("to_v");
    std::vector<torch::Tensor> per_head;
    for (int64_t h = 0; h < heads; ++h) {
      const auto qs = q.slice(0, h * hc, (h + 1) * hc), ks = k.slice(0, h * hc, (h + 1) * hc),
                 vs = v.slice(0, h * hc, (h + 1) * hc);
      const torch::Tensor a = torch::softmax(qs.t().mm(ks) / std::sqrt(static_cast<double>(hc)), 1);  // [Lq, Lk]
      per_head.push_back(vs.mm(a.t()));
    }
    const torch::Tensor ref = w("proj_out").mm(torch::cat(per_head, 0)) + b("proj_out");
    // float32 dot products of length <= 64 over O(1) values: rounding well below 1e-5.
    EXPECT_LE(max_abs(out[n], ref), 1e-5) << "row " << n;
  }
}

TEST(ParallelOps, PointwiseAndAttentionMatchFloat64AndDoNotDependOnThreadsOrBatch) {
  // The job's byte-identity promise rests on these: the same bits for 1 and 2 threads, and a row computed alone
  // equals the same row inside a batch.
  torch::manual_seed(5);
  const torch::Tensor x = torch::randn({6, 96, 16, 16});
  const torch::Tensor w = torch::randn({200, 96}) * 0.1, bias = torch::randn({200});
  const torch::Tensor q = torch::randn({6 * 3, 32, 64}), k = torch::randn({6 * 3, 32, 40}), v = torch::randn({6 * 3, 32, 40});
  const int saved = at::get_num_threads();
  std::vector<torch::Tensor> y, o;
  for (int threads : {1, 2}) {
    at::set_num_threads(threads);
    y.push_back(pointwise(w, bias, x));
    o.push_back(attention(q, k, v, 6, 0.125));
  }
  at::set_num_threads(saved);
  EXPECT_TRUE(torch::equal(y[0], y[1]));
  EXPECT_TRUE(torch::equal(o[0], o[1]));
  EXPECT_TRUE(torch::equal(pointwise(w, bias, x.narrow(0, 4, 1)), y[0].narrow(0, 4, 1)));
  EXPECT_TRUE(torch::equal(attention(q.narrow(0, 12, 3), k.narrow(0, 12, 3), v.narrow(0, 12, 3), 1, 0.125),
                           o[0].narrow(0, 12, 3)));
  // Values: float64 references; sums of 96 (pointwise) and 32/40 (attention) terms of O(1) values round well
  // below 1e-4 in float32.
  const torch::Tensor y_ref = torch::einsum("oi,bihw->bohw", {w.to(torch::kDouble), x.to(torch::kDouble)}) +
                              bias.to(torch::kDouble).view({1, 200, 1, 1});
  EXPECT_LE(max_abs(y[0], y_ref), 1e-4);
  const torch::Tensor qd = q.to(torch::kDouble), kd = k.to(torch::kDouble), vd = v.to(torch::kDouble);
  const torch::Tensor a = torch::softmax(torch::bmm(qd.transpose(1, 2), kd) * 0.125, -1);
  EXPECT_LE(max_abs(o[0], torch::bmm(vd, a.transpose(1, 2))), 1e-5);
}

TEST(ParallelOps, TransposedConvAs3x3ConvAndPixelShuffleEqualsConvTranspose2d) {
  // The Upsample of the UNet (ConvTranspose2d(C, C, 4, stride 2, padding 1)) computed by LibTorch in float64
  // against the rewritten 3x3 convolution + pixel_shuffle, also in float64: equal up to float64 rounding.
  torch::manual_seed(9);
  const torch::Tensor x = torch::randn({2, 12, 5, 7}, torch::kDouble);
  const torch::Tensor w = torch::randn({12, 8, 4, 4}, torch::kDouble), b = torch::randn({8}, torch::kDouble);
  const torch::Tensor want = torch::nn::functional::conv_transpose2d(
      x, w, torch::nn::functional::ConvTranspose2dFuncOptions().bias(b).stride(2).padding(1));
  const auto [w3, b3] = transposed_4x4s2_as_3x3(w, b);
  const torch::Tensor got = torch::pixel_shuffle(
      torch::nn::functional::conv2d(x, w3, torch::nn::functional::Conv2dFuncOptions().bias(b3).padding(1)), 2);
  ASSERT_EQ(got.sizes(), want.sizes());
  EXPECT_LE(max_abs(got, want), 1e-12);
}

TEST(Precision, Bf16NetworksStayCloseToFp32) {
  if (!onednn_runs(torch::kBFloat16)) GTEST_SKIP() << "no bfloat16 path on this CPU (needs AVX-512)";
  const config::ModelConfig cfg = tiny_config();
  auto unet32 = random_idiff_face_unet(cfg, 3, torch::kCPU), unet16 = random_idiff_face_unet(cfg, 3, torch::kCPU);
  auto dec32 = random_vq_decoder(cfg, 4, torch::kCPU), dec16 = random_vq_decoder(cfg, 4, torch::kCPU);
  unet16->set_compute_dtype(torch::kBFloat16);
  dec16->set_compute_dtype(torch::kBFloat16);
  torch::manual_seed(2);
  const torch::Tensor x = torch::randn({3, 3, 16, 16}), c = torch::randn({3, 512});
  const torch::Tensor t = torch::tensor({10, 500, 990}, torch::kLong);
  const torch::Tensor e32 = unet32->eps(x, t, c), e16 = unet16->eps(x, t, c);
  ASSERT_EQ(e16.scalar_type(), torch::kFloat);
  // bfloat16 keeps 8 significant bits (relative rounding 2^-9 per operation); a few dozen layers stay within
  // a few percent of float32, far from an unrelated output (relative difference ~1.4).
  const double rel = ((e16 - e32).norm() / e32.norm()).item<double>();
  EXPECT_LT(rel, 0.05);
  EXPECT_GT(rel, 0.0);  // it really ran in bfloat16
  const torch::Tensor i32 = dec32->decode(x), i16 = dec16->decode(x);
  ASSERT_EQ(i16.scalar_type(), torch::kFloat);
  EXPECT_LT(((i16 - i32).norm() / i32.norm()).item<double>(), 0.05);
  EXPECT_THROW(unet16->set_compute_dtype(torch::kHalf), ModelError);
}

TEST(UNetParts, ContextKeysAndValuesAreReusedOnlyForTheSameContextValues) {
  // The cross-attention keeps its keys/values while the context holds the same values: a model that has seen
  // other contexts gives bitwise what a fresh model gives, also after the caller changed a context in place.
  const config::ModelConfig cfg = tiny_config();
  auto used = random_idiff_face_unet(cfg, 5, torch::kCPU);
  torch::manual_seed(4);
  const torch::Tensor x = torch::randn({2, 3, 16, 16}), t = torch::tensor({700, 700}, torch::kLong);
  torch::Tensor c = torch::randn({2, 512});
  const torch::Tensor c2 = torch::randn({2, 512});
  const torch::Tensor first = used->eps(x, t, c);
  EXPECT_TRUE(torch::equal(used->eps(x, t, c), first));
  EXPECT_TRUE(torch::equal(used->eps(x, t, c2), random_idiff_face_unet(cfg, 5, torch::kCPU)->eps(x, t, c2)));
  c.mul_(-1.5);
  const torch::Tensor changed = used->eps(x, t, c);
  EXPECT_TRUE(torch::equal(changed, random_idiff_face_unet(cfg, 5, torch::kCPU)->eps(x, t, c)));
  EXPECT_FALSE(torch::equal(changed, first));
}

TEST(UNetParts, TimeFeaturesAreCosineThenSine) {
  config::UNetConfig u = tiny_config().unet;
  ConditionalUNet net(u);
  const torch::Tensor t = torch::tensor({0, 1, 500, 999}, torch::kLong);
  const torch::Tensor f = net->time_features(t);
  ASSERT_EQ(f.sizes(), (std::vector<int64_t>{4, 32}));
  const int64_t half = 16;
  double worst = 0;
  for (int64_t b = 0; b < 4; ++b)
    for (int64_t k = 0; k < half; ++k) {
      const double a = static_cast<double>(t[b].item<int64_t>()) * std::exp(-std::log(10000.0) * k / half);
      worst = std::max({worst, std::abs(f[b][k].item<double>() - std::cos(a)),
                        std::abs(f[b][half + k].item<double>() - std::sin(a))});
    }
  // The argument t*f_k is formed in float32 (as upstream): |a| <= 999 carries ~1e-4 absolute rounding.
  EXPECT_LE(worst, 2e-4);
}

TEST(DecoderParts, QuantiserPicksNearestCodeAcrossChunks) {
  VectorQuantizer vq(8192, 3);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(21);
  {
    torch::NoGradGuard g;
    vq->named_parameters()["embedding.weight"].normal_(0.0, 1.0, gen);
  }
  // 4160 latent pixels > the 4096-row chunk used for an 8192-entry codebook: exercises two chunks.
  const torch::Tensor z = torch::randn({1, 3, 64, 65}, gen);
  torch::Tensor idx;
  torch::Tensor zq;
  {
    torch::NoGradGuard g;
    zq = vq(z, &idx);
  }
  ASSERT_EQ(idx.sizes(), (std::vector<int64_t>{1, 64, 65}));
  const torch::Tensor e = vq->codebook().detach().to(torch::kDouble);
  const torch::Tensor zf = z.permute({0, 2, 3, 1}).reshape({-1, 3}).to(torch::kDouble);
  int64_t differing = 0;
  const torch::Tensor ee = e.pow(2).sum(1);
  for (int64_t r0 = 0; r0 < zf.size(0); r0 += 1024) {
    const torch::Tensor zc = zf.slice(0, r0, std::min<int64_t>(zf.size(0), r0 + 1024));
    // float64 squared distances (relative rounding ~1e-16, far below any float32 decision gap)
    const torch::Tensor d = zc.pow(2).sum(1, true) + ee - 2 * zc.mm(e.t());
    const torch::Tensor ref = d.argmin(1);
    const torch::Tensor got = idx.view({-1}).slice(0, r0, r0 + zc.size(0));
    // Allow a decision to differ only where float32 rounding can flip it (two distances within 1e-5).
    const torch::Tensor dg = d.gather(1, got.unsqueeze(1)).squeeze(1), dr = d.gather(1, ref.unsqueeze(1)).squeeze(1);
    EXPECT_TRUE(((dg - dr) <= 1e-5).all().item<bool>());
    differing += got.ne(ref).sum().item<int64_t>();
  }
  EXPECT_LE(differing, 2);
  // Quantised values are the chosen codebook rows (z + (e - z) equals e up to one rounding).
  const torch::Tensor rows =
      vq->codebook().detach().index_select(0, idx.view({-1})).view({1, 64, 65, 3}).permute({0, 3, 1, 2});
  EXPECT_LE(max_abs(zq, rows), 1e-6);
}

// The checkpoint's schedule buffers against the model file's schedule: equal passes, another beta_T or T fails.
TEST(ScheduleBuffers, CheckCatchesAnotherBetaOrT) {
  namespace sm = adaptdiff::sampler;
  const auto sch = sm::Schedule::linear(1000, 1e-4, 0.02);
  const auto expected = sch.checkpoint_buffers();
  EXPECT_NO_THROW(check_schedule_buffers(expected, sch.T, sch.checkpoint_buffers(), "ckpt"));
  const auto other = sm::Schedule::linear(1000, 1e-4, 0.03);
  EXPECT_THROW(check_schedule_buffers(expected, sch.T, other.checkpoint_buffers(), "ckpt"), adaptdiff::ModelError);
  const auto shorter = sm::Schedule::linear(500, 1e-4, 0.02);
  EXPECT_THROW(check_schedule_buffers(expected, sch.T, shorter.checkpoint_buffers(), "ckpt"), adaptdiff::ModelError);
}

}  // namespace
}  // namespace adaptdiff::model
