// Extended XYZ reading: the fields klay eval needs, and clear errors with line numbers.
#include <gtest/gtest.h>

#include "md/xyz.hpp"
#include "base/error.hpp"

using klay::md::parse_extended_xyz;

namespace {

// The message of the error parsing `text` throws ("" if none).
std::string error_of(const std::string& text) {
  try {
    parse_extended_xyz(text, "s.xyz");
  } catch (const klay::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Xyz, ReadsLatticePropertiesAndPbc) {
  const auto s = parse_extended_xyz(
      "2\n"
      "Lattice=\"8.0 0.0 0.0 0.7 7.6 0.0 -0.5 0.6 7.9\" Properties=species:S:1:pos:R:3:forces:R:3 "
      "energy=-1.5 pbc=\"T T F\"\n"
      "Si 0.1 0.2 0.3 9 9 9\n"
      "O  -1.25e-1 2 3.5 0 0 0\n",
      "s.xyz");
  ASSERT_EQ(s.size(), 2);
  EXPECT_EQ(s.elements, (std::vector<std::string>{"Si", "O"}));
  EXPECT_EQ(s.positions, (std::vector<double>{0.1, 0.2, 0.3, -0.125, 2, 3.5}));
  EXPECT_TRUE(s.has_lattice);
  EXPECT_EQ(s.cell.vectors[1][0], 0.7);
  EXPECT_EQ(s.cell.vectors[2][2], 7.9);
  EXPECT_EQ(s.cell.periodic, (std::array<bool, 3>{true, true, false}));
}

TEST(Xyz, ColumnOrderFromPropertiesAndAseDefaults) {
  // pos before species; no pbc key with a Lattice = periodic; no Lattice = open.
  auto s = parse_extended_xyz("1\nProperties=pos:R:3:species:S:1 Lattice=\"3 0 0 0 3 0 0 0 3\"\n1 2 3 Cu\n", "s.xyz");
  EXPECT_EQ(s.elements[0], "Cu");
  EXPECT_EQ(s.positions, (std::vector<double>{1, 2, 3}));
  EXPECT_EQ(s.cell.periodic, (std::array<bool, 3>{true, true, true}));
  s = parse_extended_xyz("1\nplain comment\nH 0 0 0\n", "s.xyz");
  EXPECT_FALSE(s.has_lattice);
  EXPECT_FALSE(s.cell.any_periodic());
}

TEST(Xyz, ErrorsNameTheLine) {
  EXPECT_EQ(error_of(""), "s.xyz:1: empty file: expected the number of atoms on the first line");
  EXPECT_EQ(error_of("two\n\n"), "s.xyz:1: expected the number of atoms, got 'two'");
  EXPECT_EQ(error_of("2\n\nH 0 0 0\n"), "s.xyz:4: the file ends after 1 atom lines; line 1 says 2");
  EXPECT_EQ(error_of("1\n\nH 0 zero 0\n"), "s.xyz:3: position: 'zero' is not a finite number");
  EXPECT_EQ(error_of("1\n\nH 0 0\n"), "s.xyz:3: expected 4 columns (Properties), got 3");
  EXPECT_EQ(error_of("1\nLattice=\"1 0 0 0 1 0\"\nH 0 0 0\n"),
            "s.xyz:2: Lattice needs 9 numbers (a, b, c as rows), got 6");
  EXPECT_EQ(error_of("1\npbc=\"T T T\"\nH 0 0 0\n"), "s.xyz:2: pbc says periodic but there is no Lattice=\"...\"");
  EXPECT_EQ(error_of("1\nProperties=species:S:1:xyz:R:3\nH 0 0 0\n"), "s.xyz:2: Properties has no pos:R:3 column");
  EXPECT_EQ(error_of("1\nLattice=\"1 0 0\nH 0 0 0\n"), "s.xyz:2: unterminated quote in the value of 'Lattice'");
  EXPECT_EQ(error_of("1\n\nH 0 0 0\n1\n\nH 0 0 0\n"),
            "s.xyz:4: unexpected content after the 1 atoms (only single-frame files are read)");
  EXPECT_EQ(error_of("1\npbc=\"T X T\" Lattice=\"1 0 0 0 1 0 0 0 1\"\nH 0 0 0\n"), "s.xyz:2: pbc: 'X' is not T or F");
}

TEST(Xyz, MissingFileIsAnError) {
  EXPECT_THROW(klay::md::read_extended_xyz("/nonexistent/structure.xyz"), klay::Error);
}

namespace {

std::string frames_error_of(const std::string& text) {
  try {
    klay::md::parse_extended_xyz_frames(text, "d.xyz");
  } catch (const klay::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(XyzFrames, ReadsEveryFrameWithItsLabels) {
  const auto frames = klay::md::parse_extended_xyz_frames(
      "2\n"
      "Lattice=\"3 0 0 0 3 0 0 0 3\" Properties=species:S:1:pos:R:3:forces:R:3 energy=-7.25 "
      "virial=\"1 2 3 2 5 6 3 6 9\" config_type=bulk\n"
      "Si 0 0 0 0.5 -0.5 1e-1\n"
      "Si 1 1 1 -0.5 0.5 -1e-1\n"
      "\n"
      "1\n"
      "Properties=species:S:1:pos:R:3\n"
      "O 0 0 0\n",
      "d.xyz");
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_EQ(frames[0].line, 1);
  EXPECT_EQ(frames[1].line, 6);
  EXPECT_EQ(frames[0].energy, -7.25);
  EXPECT_EQ(frames[0].forces, (std::vector<double>{0.5, -0.5, 0.1, -0.5, 0.5, -0.1}));
  ASSERT_TRUE(frames[0].virial);
  EXPECT_EQ(*frames[0].virial, (std::array<double, 9>{1, 2, 3, 2, 5, 6, 3, 6, 9}));
  EXPECT_EQ(frames[0].info.at("config_type"), "bulk");
  EXPECT_EQ(frames[1].structure.elements, (std::vector<std::string>{"O"}));
  EXPECT_FALSE(frames[1].energy);
  EXPECT_TRUE(frames[1].forces.empty());
  EXPECT_FALSE(frames[1].virial);
}

TEST(XyzFrames, StressBecomesVirialWithAsesSign) {
  // ASE: stress = -virial / volume; Voigt order xx yy zz yz xz xy; volume 2 * 3 * 4 = 24.
  const auto frames = klay::md::parse_extended_xyz_frames(
      "1\nLattice=\"2 0 0 0 3 0 0 0 4\" stress=\"0.5 1 1.5 0.25 -0.125 2\"\nSi 0 0 0\n", "d.xyz");
  ASSERT_TRUE(frames[0].virial);
  EXPECT_EQ(*frames[0].virial, (std::array<double, 9>{-12, -48, 3, -48, -24, -6, 3, -6, -36}));
  const auto full = klay::md::parse_extended_xyz_frames(
      "1\nLattice=\"2 0 0 0 3 0 0 0 4\" stress=\"1 0 0 0 0 0 0 0 -1\"\nSi 0 0 0\n", "d.xyz");
  EXPECT_EQ((*full[0].virial)[0], -24);
  EXPECT_EQ((*full[0].virial)[8], 24);
}

TEST(XyzFrames, ErrorsNameTheLineOfTheFrame) {
  const std::string good = "1\nenergy=1\nH 0 0 0\n";
  EXPECT_EQ(frames_error_of(""), "d.xyz:1: no frames: expected the number of atoms on the first line");
  EXPECT_EQ(frames_error_of(good + "2\nenergy=2\nH 0 0 0\n"),
            "d.xyz:7: the file ends after 1 atom lines; line 4 says 2");
  EXPECT_EQ(frames_error_of(good + "1\nenergy=low\nH 0 0 0\n"), "d.xyz:5: energy: 'low' is not a finite number");
  EXPECT_EQ(frames_error_of(good + "1\nProperties=species:S:1:pos:R:3:forces:R:2\nH 0 0 0 1 2\n"),
            "d.xyz:5: Properties: forces must be forces:R:3");
  EXPECT_EQ(frames_error_of(good + "1\nLattice=\"1 0 0 0 1 0 0 0 1\" virial=\"1 2 3 4\"\nH 0 0 0\n"),
            "d.xyz:5: virial needs 9 numbers (3x3, row-major) or 6 (Voigt xx yy zz yz xz xy), got 4");
  EXPECT_EQ(frames_error_of("1\nstress=\"1 1 1 0 0 0\"\nH 0 0 0\n"), "d.xyz:2: stress= needs a Lattice to give the volume");
  EXPECT_EQ(frames_error_of("1\nLattice=\"1 0 0 0 1 0 0 0 1\" stress=\"1 1 1 0 0 0\" virial=\"1 1 1 0 0 0\"\nH 0 0 0\n"),
            "d.xyz:2: both virial= and stress= are given; keep one");
  EXPECT_EQ(frames_error_of(good + "x\n"), "d.xyz:4: expected the number of atoms, got 'x'");
}
