// apps/image2gps/metadata.h — the course's label file, metadata.csv:
//
//   image_file,Latitude,Longitude
//   img_00000_0.jpg,39.9516483,-75.19224499972222
//
// image_file is relative to the folder holding the csv. Readers find the three columns by name
// (any order, case-insensitive, extra columns ignored) and accept RFC 4180 quoting; a bad row
// is an error naming the file and line, never a silently dropped sample.
#pragma once

#include <string>
#include <vector>

namespace i2g {

struct GeoRecord {
  std::string image_file;  // path relative to the csv's folder
  double lat = 0.0;        // decimal degrees, + = North
  double lon = 0.0;        // decimal degrees, + = East
};

// Reads a metadata.csv. Throws engine::Error naming the file (and line, where there is one) on:
// a missing column, a row with a different number of fields than the header, an empty
// image_file, a non-numeric / non-finite coordinate, |lat| > 90 or |lon| > 180, an unterminated
// quote. Blank lines are skipped; a UTF-8 BOM and CRLF line ends are accepted.
std::vector<GeoRecord> read_metadata_csv(const std::string& path);

// Writes `image_file,Latitude,Longitude` rows atomically (temporary file + rename). Coordinates
// are written in the shortest form that reads back to the same double; file names that contain
// a comma, quote or newline are quoted. Throws engine::Error on invalid records or I/O failure.
void write_metadata_csv(const std::string& path, const std::vector<GeoRecord>& records);

}  // namespace i2g
