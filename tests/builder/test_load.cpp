// YAML loading and scalar typing: what OmegaConf.load (PyYAML SafeLoader, YAML 1.1, OmegaConf's float
// pattern) gives for each form, with libyaml's line:column on every node (docs/design.md#yaml-loading).
#include <cmath>
#include <string>

#include "builder_fixture.hpp"

namespace {

// Loads "v: TEXT" and returns the typed value (the fixture keeps it alive).
const klay_node* scalar(Loaded& l, const std::string& text) {
  Loaded::from_text(l, "v: " + text + "\n");
  EXPECT_NE(l.doc, nullptr) << text << "\n" << l.messages();
  return l.doc ? klay_map_get(l.root(), "v") : nullptr;
}

void expect_bool(const std::string& text, bool value) {
  Loaded l;
  const klay_node* n = scalar(l, text);
  ASSERT_NE(n, nullptr);
  EXPECT_EQ(n->kind, KLAY_BOOL) << text;
  EXPECT_EQ(n->boolean, value ? 1 : 0) << text;
}

void expect_int(const std::string& text, int64_t value) {
  Loaded l;
  const klay_node* n = scalar(l, text);
  ASSERT_NE(n, nullptr);
  EXPECT_EQ(n->kind, KLAY_INT) << text;
  EXPECT_EQ(n->integer, value) << text;
}

void expect_float(const std::string& text, double value) {
  Loaded l;
  const klay_node* n = scalar(l, text);
  ASSERT_NE(n, nullptr);
  ASSERT_EQ(n->kind, KLAY_FLOAT) << text;
  if (std::isnan(value)) EXPECT_TRUE(std::isnan(n->real)) << text;
  else EXPECT_EQ(n->real, value) << text;
}

void expect_string(const std::string& text, const std::string& value) {
  Loaded l;
  const klay_node* n = scalar(l, text);
  ASSERT_NE(n, nullptr);
  EXPECT_EQ(n->kind, KLAY_STRING) << text;
  EXPECT_EQ(std::string(n->text), value) << text;
}

void expect_null(const std::string& text) {
  Loaded l;
  const klay_node* n = scalar(l, text);
  ASSERT_NE(n, nullptr);
  EXPECT_EQ(n->kind, KLAY_NULL) << text;
}

void expect_load_error(const std::string& yaml, const std::string& expected) {
  Loaded l;
  Loaded::from_text(l, yaml);
  EXPECT_EQ(l.doc, nullptr);
  EXPECT_NE(l.messages().find(expected), std::string::npos) << l.messages();
}

}  // namespace

TEST(Load, Yaml11BooleansAsPyYAML) {
  for (const char* t : {"yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"}) expect_bool(t, true);
  for (const char* f : {"no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"}) expect_bool(f, false);
  // Mixed case and single letters are strings for PyYAML's resolver.
  expect_string("yEs", "yEs");
  expect_string("y", "y");
  expect_string("n", "n");
  // The explicit tag's constructor is case-insensitive.
  expect_bool("!!bool yEs", true);
}

TEST(Load, FloatsIncludeOmegaConfForms) {
  expect_float("1e-3", 1e-3);
  expect_float("1E5", 1e5);
  expect_float(".5", 0.5);
  expect_float("1.", 1.0);
  expect_float("4.0", 4.0);
  expect_float("-1.5e+3", -1500.0);
  expect_float("1_000.5", 1000.5);
  expect_float("1:30.5", 90.5);  // YAML 1.1 sexagesimal
  expect_float(".inf", INFINITY);
  expect_float("-.Inf", -INFINITY);
  expect_float(".NaN", NAN);
  // Not floats for PyYAML/OmegaConf.
  expect_string("-.5", "-.5");
  expect_string("1e", "1e");
  expect_string("1.2.3", "1.2.3");
}

TEST(Load, IntegersAsPyYAMLSafeLoader) {
  expect_int("42", 42);
  expect_int("-7", -7);
  expect_int("+3", 3);
  expect_int("0", 0);
  expect_int("0x1F", 31);
  expect_int("-0x10", -16);
  expect_int("0b101", 5);
  expect_int("017", 15);  // YAML 1.1 octal
  expect_int("1_000", 1000);
  expect_int("1:30", 90);  // sexagesimal
  expect_int("9223372036854775807", INT64_MAX);
  expect_int("-9223372036854775808", INT64_MIN);
  // YAML 1.2's 0o prefix is not an int in YAML 1.1 / PyYAML; 08 is not octal.
  expect_string("0o17", "0o17");
  expect_string("08", "08");
  expect_load_error("v: 9223372036854775808\n", "test.yaml:1:4: error: integer '9223372036854775808' does not fit");
}

TEST(Load, NullsAndQuotedScalars) {
  for (const char* n : {"~", "null", "Null", "NULL", ""}) expect_null(n);
  expect_string("'42'", "42");
  expect_string("\"yes\"", "yes");
  expect_string("'1e-3'", "1e-3");
  expect_string("'null'", "null");
  expect_string("!!str 42", "42");
  expect_int("!!int \"0x10\"", 16);
  expect_float("!!float 1", 1.0);
  expect_load_error("v: !!python/object foo\n", "test.yaml:1:4: error: unsupported YAML tag '!!python/object' on a scalar");
  expect_load_error("v: !custom foo\n", "1:4: error: unsupported YAML tag '!custom'");
}

TEST(Load, IntegerMappingKeysAndMarks) {
  Loaded l;
  Loaded::from_text(l, "inputs:\n  0: a\n  \"1\": b\n  name: c\n");
  ASSERT_NE(l.doc, nullptr) << l.messages();
  const klay_node* inputs = klay_map_get(l.root(), "inputs");
  ASSERT_NE(inputs, nullptr);
  ASSERT_EQ(inputs->len, 3u);
  EXPECT_EQ(inputs->keys[0]->kind, KLAY_INT);
  EXPECT_EQ(inputs->keys[0]->integer, 0);
  EXPECT_EQ(inputs->keys[1]->kind, KLAY_STRING);
  EXPECT_STREQ(inputs->keys[1]->text, "1");
  EXPECT_STREQ(inputs->keys[2]->text, "name");
  EXPECT_EQ(inputs->keys[2]->mark.line, 4);
  EXPECT_EQ(inputs->keys[2]->mark.col, 3);
  EXPECT_EQ(inputs->items[2]->mark.line, 4);
  EXPECT_EQ(inputs->items[2]->mark.col, 9);
  EXPECT_STREQ(inputs->items[2]->mark.file, "test.yaml");
}

TEST(Load, DuplicateKeysAreErrors) {
  expect_load_error("a: 1\nb: 2\na: 3\n", "test.yaml:3:1: error: duplicate key 'a' (first defined at line 1, column 1)");
  // `0` and `"0"` name the same port once KLay turns digit strings into positions.
  expect_load_error("m: {0: x, \"0\": y}\n", "test.yaml:1:11: error: duplicate key '0'");
}

TEST(Load, AnchorsAliasesAndMergeKeys) {
  Loaded l;
  Loaded::from_text(l,
                    "base: &irreps\n  - {l: 0, mul: 8}\n  - {l: 1, mul: 8}\n"
                    "copy: *irreps\n"
                    "defaults: &d {r_max: 4.0, num_radial_basis: 8}\n"
                    "radial: {<<: *d, num_radial_basis: 6}\n"
                    "multi: {<<: [{a: 1}, {a: 2, b: 3}], c: 4}\n");
  ASSERT_NE(l.doc, nullptr) << l.messages();
  const klay_node* copy = klay_map_get(l.root(), "copy");
  ASSERT_EQ(copy->kind, KLAY_SEQ);
  ASSERT_EQ(copy->len, 2u);
  EXPECT_NE(copy, klay_map_get(l.root(), "base"));  // an independent copy
  EXPECT_EQ(at_path(copy, "1.l")->integer, 1);
  const klay_node* radial = klay_map_get(l.root(), "radial");
  ASSERT_EQ(radial->len, 2u);
  EXPECT_EQ(at_path(radial, "r_max")->real, 4.0);
  EXPECT_EQ(at_path(radial, "num_radial_basis")->integer, 6);  // explicit keys win
  const klay_node* multi = klay_map_get(l.root(), "multi");
  EXPECT_EQ(at_path(multi, "a")->integer, 1);  // earlier merge sources win
  EXPECT_EQ(at_path(multi, "b")->integer, 3);
  EXPECT_EQ(at_path(multi, "c")->integer, 4);
}

TEST(Load, BadAliasesAreClearErrors) {
  expect_load_error("a: &x [1, *x]\n", "test.yaml:1:11: error: alias *x refers to a node that contains it");
  expect_load_error("a: *nothing\n", "test.yaml:1:4: error: undefined alias *nothing");
  expect_load_error("a: {<<: 3}\n", "the merge key '<<' expects a mapping or a list of mappings");
  // Exponential alias expansion stops at the node limit instead of exhausting memory.
  std::string bomb = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i < 9; ++i) {
    std::string prev = "*a" + std::to_string(i - 1);
    bomb += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [";
    for (int k = 0; k < 10; ++k) bomb += prev + (k < 9 ? ", " : "]\n");
  }
  expect_load_error(bomb, "exceeds the node limit");
}

TEST(Load, SyntaxErrorsCarryPositions) {
  expect_load_error("a:\n  b: [1, 2\nc: 3\n", "test.yaml:3:2: error: YAML syntax error: did not find expected ',' or ']'");
  expect_load_error("a: 1\n---\nb: 2\n", "test.yaml:2:1: error: more than one YAML document");
  expect_load_error("v: \"a\\0b\"\n", "NUL character");
  expect_load_error(std::string(300, '[') + std::string(300, ']') + "\n", "nesting deeper than 256 levels");
  Loaded missing;
  Loaded::from_file(missing, "/nonexistent/model.yaml");
  EXPECT_EQ(missing.doc, nullptr);
  EXPECT_NE(missing.messages().find("/nonexistent/model.yaml: error: cannot open"), std::string::npos);
}

TEST(Load, DirectoryIsReportedAsOne) {
  Loaded l;
  Loaded::from_file(l, KLAY_BAD_YAML_DIR);
  EXPECT_EQ(l.doc, nullptr);
  EXPECT_NE(l.messages().find(KLAY_BAD_YAML_DIR ": error: is a directory, not a YAML file"), std::string::npos)
      << l.messages();
}

TEST(Load, EmptyDocumentIsAnEmptyMapping) {
  Loaded l;
  Loaded::from_text(l, "");
  ASSERT_NE(l.doc, nullptr);
  EXPECT_EQ(l.root()->kind, KLAY_MAP);
  EXPECT_EQ(l.root()->len, 0u);
}
