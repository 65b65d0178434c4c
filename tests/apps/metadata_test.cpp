// tests/apps/metadata_test.cpp — metadata.csv reading (columns by name, quoting, errors with
// file:line) and atomic writing that round-trips doubles exactly.
#include "apps/image2gps/metadata.h"

#include <fstream>

#include "data_test_util.h"
#include "engine/error.h"

namespace {

using namespace i2g_test;

void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// Expects read_metadata_csv to fail with a message holding the path, `line` and `what`.
void expect_error(const std::string& path, const std::string& text, int line, const std::string& what) {
  write_text(path, text);
  try {
    i2g::read_metadata_csv(path);
    ADD_FAILURE() << "no error for:\n" << text;
  } catch (const engine::Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path + ":" + std::to_string(line) + ":"), std::string::npos) << msg;
    EXPECT_NE(msg.find(what), std::string::npos) << "expected '" << what << "' in: " << msg;
  }
}

TEST(Metadata, ReadsCourseFormat) {
  I2G_REQUIRE_PENN();
  const auto rows = i2g::read_metadata_csv(penn_dir() + "/crops224/metadata.csv");
  ASSERT_EQ(rows.size(), 500u);
  EXPECT_EQ(rows[0].image_file, "img_00000_0.jpg");
  EXPECT_DOUBLE_EQ(rows[0].lat, 39.9516483);
  EXPECT_DOUBLE_EQ(rows[0].lon, -75.19224499972222);
}

TEST(Metadata, ColumnsByNameQuotingBomAndCrlf) {
  TempDir tmp;
  const std::string p = tmp.file("m.csv");
  write_text(p,
             "\xEF\xBB\xBF" "extra,Longitude,image_file,LATITUDE\r\n"
             "x,-75.5,a.jpg,39.25\r\n"
             "\r\n"
             "\"q,\"\"uoted\"\"\",+10,\"b, c.jpg\",-0.5\r\n"
             "\"multi\nline\",1e1, d.jpg ,  2  \n");
  const auto rows = i2g::read_metadata_csv(p);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].image_file, "a.jpg");
  EXPECT_DOUBLE_EQ(rows[0].lat, 39.25);
  EXPECT_DOUBLE_EQ(rows[0].lon, -75.5);
  EXPECT_EQ(rows[1].image_file, "b, c.jpg");
  EXPECT_DOUBLE_EQ(rows[1].lat, -0.5);
  EXPECT_DOUBLE_EQ(rows[1].lon, 10.0);
  EXPECT_EQ(rows[2].image_file, "d.jpg");
  EXPECT_DOUBLE_EQ(rows[2].lat, 2.0);
  EXPECT_DOUBLE_EQ(rows[2].lon, 10.0);
}

TEST(Metadata, BadRowsNameFileAndLine) {
  TempDir tmp;
  const std::string p = tmp.file("bad.csv");
  const std::string head = "image_file,Latitude,Longitude\n";
  expect_error(p, head + "a.jpg,1,2\nb.jpg,north,2\n", 3, "Latitude 'north' is not a number");
  expect_error(p, head + "a.jpg,1,2\nb.jpg,91,2\n", 3, "out of range");
  expect_error(p, head + "a.jpg,-90.5,2\n", 2, "out of range");
  expect_error(p, head + "a.jpg,1,180.01\n", 2, "Longitude");
  expect_error(p, head + "a.jpg,nan,2\n", 2, "out of range");
  expect_error(p, head + "a.jpg,1,inf\n", 2, "out of range");
  expect_error(p, head + "a.jpg,1\n", 2, "2 fields but the header has 3");
  expect_error(p, head + "a.jpg,1,2,3\n", 2, "4 fields");
  expect_error(p, head + "\n\na.jpg,1,2 x\n", 4, "is not a number");
  expect_error(p, head + ",1,2\n", 2, "empty image_file");
  expect_error(p, head + "\"a.jpg,1,2\n", 2, "unterminated");
  expect_error(p, "image_file,Lat,Longitude\na.jpg,1,2\n", 1, "no 'Latitude' column");
}

TEST(Metadata, EmptyAndMissingFiles) {
  TempDir tmp;
  write_text(tmp.file("empty.csv"), "");
  EXPECT_THROW(i2g::read_metadata_csv(tmp.file("empty.csv")), engine::Error);
  EXPECT_THROW(i2g::read_metadata_csv(tmp.file("none.csv")), engine::Error);
  write_text(tmp.file("header.csv"), "image_file,Latitude,Longitude\n");
  EXPECT_TRUE(i2g::read_metadata_csv(tmp.file("header.csv")).empty());
}

TEST(Metadata, WriteRoundTripsExactlyAndAtomically) {
  TempDir tmp;
  std::vector<i2g::GeoRecord> recs = {{"img_00000.jpg", 39.951648300000004, -75.19224499972222},
                                      {"with,comma \"q\".jpg", -89.999999999999, 179.99999999999997},
                                      {"c.png", 0.1 + 0.2, -1e-300}};
  const std::string p = tmp.file("out.csv");
  i2g::write_metadata_csv(p, recs);
  const auto back = i2g::read_metadata_csv(p);
  ASSERT_EQ(back.size(), recs.size());
  for (size_t i = 0; i < recs.size(); ++i) {
    EXPECT_EQ(back[i].image_file, recs[i].image_file);
    EXPECT_EQ(back[i].lat, recs[i].lat);  // bit-exact
    EXPECT_EQ(back[i].lon, recs[i].lon);
  }
  std::ifstream f(p);
  std::string header;
  std::getline(f, header);
  EXPECT_EQ(header, "image_file,Latitude,Longitude");
  int files = 0;
  for (const auto& e : fs::directory_iterator(tmp.path())) files += e.is_regular_file();
  EXPECT_EQ(files, 1);  // no temporary left behind

  EXPECT_THROW(i2g::write_metadata_csv(p, {{"x.jpg", 91, 0}}), engine::Error);
  EXPECT_THROW(i2g::write_metadata_csv(p, {{"", 1, 0}}), engine::Error);
  EXPECT_EQ(i2g::read_metadata_csv(p).size(), 3u);  // a failed write leaves the old file
  EXPECT_THROW(i2g::write_metadata_csv(tmp.file("no/dir/m.csv"), recs), engine::Error);
}

}  // namespace
