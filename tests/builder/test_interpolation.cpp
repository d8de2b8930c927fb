// OmegaConf interpolation as OmegaConf.to_container(resolve=True) gives it
// (docs/design.md#yaml-loading).
#include <string>

#include "builder_fixture.hpp"

namespace {

std::string embedded(const std::string& value_yaml) {
  Loaded l;
  Loaded::from_text(l, "v: " + value_yaml + "\ns: \"<${v}>\"\n");
  EXPECT_NE(l.doc, nullptr) << l.messages();
  return l.doc ? klay_map_get(l.root(), "s")->text : "";
}

void expect_error(const std::string& yaml, const std::string& expected) {
  Loaded l;
  Loaded::from_text(l, yaml);
  EXPECT_EQ(l.doc, nullptr);
  EXPECT_NE(l.messages().find(expected), std::string::npos) << l.messages();
}

}  // namespace

TEST(Interpolation, WholeScalarKeepsTheReferencedType) {
  Loaded l;
  Loaded::from_text(l,
                    "p: {n: 3, r: 4.0, on: yes, none: null, name: abc}\n"
                    "a: ${p.n}\nb: '${p.n}'\nc: \"${p.r}\"\nd: ${p.on}\ne: ${p.none}\nf: ${p.name}\n");
  ASSERT_NE(l.doc, nullptr) << l.messages();
  const klay_node* root = l.root();
  EXPECT_EQ(at_path(root, "a")->kind, KLAY_INT);
  EXPECT_EQ(at_path(root, "a")->integer, 3);
  EXPECT_EQ(at_path(root, "b")->kind, KLAY_INT);  // quoted, still one whole interpolation
  EXPECT_EQ(at_path(root, "c")->kind, KLAY_FLOAT);
  EXPECT_EQ(at_path(root, "c")->real, 4.0);
  EXPECT_EQ(at_path(root, "d")->kind, KLAY_BOOL);
  EXPECT_EQ(at_path(root, "e")->kind, KLAY_NULL);
  EXPECT_STREQ(at_path(root, "f")->text, "abc");
  // The replaced node keeps the position of the referencing scalar.
  EXPECT_EQ(at_path(root, "b")->mark.line, 3);
  EXPECT_EQ(at_path(root, "b")->mark.col, 4);
}

TEST(Interpolation, ContainersAreDeepCopiedAndIndexable) {
  Loaded l;
  Loaded::from_text(l,
                    "a: {list: [1, {x: 2}]}\n"
                    "b: ${a.list}\nc: ${a.list.0}\nd: ${a.list[1].x}\ne: ${a}\n");
  ASSERT_NE(l.doc, nullptr) << l.messages();
  const klay_node* b = at_path(l.root(), "b");
  ASSERT_EQ(b->kind, KLAY_SEQ);
  ASSERT_EQ(b->len, 2u);
  EXPECT_NE(b->items[1], at_path(l.root(), "a.list.1"));
  EXPECT_EQ(at_path(b, "1.x")->integer, 2);
  EXPECT_EQ(at_path(l.root(), "c")->integer, 1);
  EXPECT_EQ(at_path(l.root(), "d")->integer, 2);
  EXPECT_EQ(at_path(l.root(), "e.list.1.x")->integer, 2);
}

TEST(Interpolation, EmbeddedValuesUsePythonStr) {
  EXPECT_EQ(embedded("3"), "<3>");
  EXPECT_EQ(embedded("4.0"), "<4.0>");
  EXPECT_EQ(embedded("0.1"), "<0.1>");
  EXPECT_EQ(embedded("1e-5"), "<1e-05>");
  EXPECT_EQ(embedded("0.0001"), "<0.0001>");
  EXPECT_EQ(embedded("1e16"), "<1e+16>");
  EXPECT_EQ(embedded("1.5e15"), "<1500000000000000.0>");
  EXPECT_EQ(embedded("123456789.125"), "<123456789.125>");
  EXPECT_EQ(embedded("-.inf"), "<-inf>");
  EXPECT_EQ(embedded("on"), "<True>");
  EXPECT_EQ(embedded("~"), "<None>");
  EXPECT_EQ(embedded("'text'"), "<text>");
  Loaded l;
  Loaded::from_text(l, "n: 2\nx: 'a${n}b${n}'\nlit: '\\${n} costs ${n}'\n");
  ASSERT_NE(l.doc, nullptr) << l.messages();
  EXPECT_STREQ(at_path(l.root(), "x")->text, "a2b2");
  EXPECT_STREQ(at_path(l.root(), "lit")->text, "${n} costs 2");
}

TEST(Interpolation, ChainsResolveInAnyOrder) {
  Loaded l;
  Loaded::from_text(l, "a: ${b}\nb: ${c.0}\nc: ['${d}']\nd: {k: 5}\ne: ${c.0.k}\n");
  ASSERT_NE(l.doc, nullptr) << l.messages();
  EXPECT_EQ(at_path(l.root(), "a.k")->integer, 5);
  EXPECT_EQ(at_path(l.root(), "e")->integer, 5);
}

TEST(Interpolation, CyclesAndMissingKeysNameTheChain) {
  expect_error("a: ${b}\nb: ${a}\n",
               "test.yaml:2:4: error: interpolation cycle: '${b}' (line 1, column 4) -> '${a}' (line 2, column 4) -> '${b}'");
  expect_error("a:\n  x: ${a}\n", "test.yaml:2:6: error: interpolation cycle");
  expect_error("a: ${b}\nb: '${p.nope}'\np: {yes_: 1}\n",
               "test.yaml:2:4: error: interpolation '${p.nope}': key 'nope' not found in 'p' (resolving '${b}' at line "
               "1, column 4 -> '${p.nope}' at line 2, column 4)");
  expect_error("a: ${model_param.x}\nmodel_params: {x: 1}\n",
               "test.yaml:1:4: error: interpolation '${model_param.x}': key 'model_param' not found at the top level; "
               "did you mean 'model_params'?");
  expect_error("l: [1]\na: ${l.3}\n", "test.yaml:2:4: error: interpolation '${l.3}': index '3' is not valid for a list of 1 items");
  expect_error("n: 1\na: ${n.x}\n", "cannot select 'x' inside a int value");
}

TEST(Interpolation, UnsupportedFormsAreErrors) {
  expect_error("a: ${oc.env:HOME}\n", "test.yaml:1:4: error: interpolation '${oc.env:HOME}' uses a resolver");
  expect_error("a: {b: 1, c: '${.b}'}\n", "is relative");
  expect_error("l: [1]\na: 'x${l}'\n", "refers to a list, which cannot be embedded in a string");
  expect_error("a: '${b'\n", "unterminated interpolation");
  expect_error("b: 1\nc: b\na: '${${c}}'\n", "nested interpolations are not supported");
}

TEST(Interpolation, KLayExampleFilesResolveAsOmegaConf) {
  Loaded l;
  Loaded::from_file(l, KLAY_SHARED_DIR "/klay_examples/new_model.yaml");
  ASSERT_NE(l.doc, nullptr) << l.messages();
  const klay_node* conv = at_path(l.root(), "model_layers.conv1.config");
  // ${model_layers.node_features.config.irreps_out_block}: the whole list of maps, resolved.
  const klay_node* input_block = at_path(conv, "input_block");
  ASSERT_EQ(input_block->kind, KLAY_SEQ);
  ASSERT_EQ(input_block->len, 1u);
  EXPECT_EQ(at_path(input_block, "0.l")->integer, 0);
  EXPECT_EQ(at_path(input_block, "0.mul")->kind, KLAY_INT);
  EXPECT_EQ(at_path(input_block, "0.mul")->integer, 32);
  // '${model_params.num_elems}' (quoted) stays an integer.
  const klay_node* mul = at_path(l.root(), "model_layers.node_features.config.irreps_in_block.0.mul");
  EXPECT_EQ(mul->kind, KLAY_INT);
  EXPECT_EQ(mul->integer, 2);
  EXPECT_EQ(at_path(conv, "conv_feature_size")->integer, 32);
  const klay_node* r_max = at_path(l.root(), "model_layers.radial_basis_func.config.r_max");
  EXPECT_EQ(r_max->kind, KLAY_FLOAT);
  EXPECT_EQ(r_max->real, 4.0);
  EXPECT_EQ(at_path(conv, "node_attr_block.0.mul")->integer, 2);
}
