// apps/image2gps/metadata.cpp — see metadata.h.
#include "apps/image2gps/metadata.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>

#include "apps/image2gps/file_io.h"
#include "engine/error.h"

namespace i2g {

namespace {

struct Row {
  int line = 0;  // 1-based line where the row starts
  std::vector<std::string> fields;
};

// RFC 4180 rows: fields split on commas, "..." quotes with "" for a quote (quoted fields may
// span lines), rows end at LF or CRLF.
std::vector<Row> parse_csv(const std::string& text, const std::string& path) {
  std::vector<Row> rows;
  size_t i = 0;
  if (text.compare(0, 3, "\xEF\xBB\xBF") == 0) i = 3;  // UTF-8 byte order mark
  int line = 1;
  Row row{line, {}};
  std::string field;
  bool quoted = false, field_was_quoted = false;
  int quote_line = 0;
  auto end_field = [&] {
    row.fields.push_back(std::move(field));
    field.clear();
    field_was_quoted = false;
  };
  auto end_row = [&] {
    end_field();
    // A blank line is one empty unquoted field: skip it.
    if (!(row.fields.size() == 1 && row.fields[0].empty())) rows.push_back(std::move(row));
    row = Row{line, {}};
  };
  for (; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          field += '"';
          ++i;
        } else {
          quoted = false;
        }
      } else {
        if (c == '\n') ++line;
        field += c;
      }
    } else if (c == '"') {
      if (!field.empty() || field_was_quoted)
        engine::fail(path, ":", line, ": a quote inside an unquoted field (quote the whole field "
                                      "and double inner quotes)");
      quoted = field_was_quoted = true;
      quote_line = line;
    } else if (c == ',') {
      end_field();
    } else if (c == '\n') {
      ++line;
      end_row();
    } else if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') {
      // CRLF: the LF ends the row.
    } else {
      field += c;
    }
  }
  if (quoted) engine::fail(path, ":", quote_line, ": unterminated quoted field");
  end_row();
  return rows;
}

std::string trim(std::string s) {
  const auto not_space = [](unsigned char c) { return !std::isspace(c); };
  s.erase(s.begin(), std::find_if(s.begin(), s.end(), not_space));
  s.erase(std::find_if(s.rbegin(), s.rend(), not_space).base(), s.end());
  return s;
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

double parse_coordinate(const std::string& raw, const char* column, double limit,
                        const std::string& path, int line) {
  const std::string s = trim(raw);
  double v = 0.0;
  const char* first = s.data();
  if (!s.empty() && s[0] == '+') ++first;  // from_chars rejects a leading '+'
  const auto [end, ec] = std::from_chars(first, s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size())
    engine::fail(path, ":", line, ": ", column, " '", raw, "' is not a number");
  if (!std::isfinite(v) || std::fabs(v) > limit)
    engine::fail(path, ":", line, ": ", column, " ", s, " is out of range [-", limit, ", ", limit,
                 "]");
  return v;
}

// Shortest decimal text that parses back to exactly `v`.
std::string shortest(double v) {
  char buf[64];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, end);
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += (c == '"') ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

}  // namespace

std::vector<GeoRecord> read_metadata_csv(const std::string& path) {
  const std::vector<uint8_t> bytes = read_file_bytes(path);
  const std::vector<Row> rows = parse_csv(std::string(bytes.begin(), bytes.end()), path);
  if (rows.empty()) engine::fail(path, ": empty file, expected the header image_file,Latitude,Longitude");

  const Row& header = rows[0];
  int col_file = -1, col_lat = -1, col_lon = -1;
  for (size_t c = 0; c < header.fields.size(); ++c) {
    const std::string name = lower(trim(header.fields[c]));
    int* slot = name == "image_file" ? &col_file
                : name == "latitude" ? &col_lat
                : name == "longitude" ? &col_lon
                                      : nullptr;
    if (!slot) continue;
    if (*slot >= 0) engine::fail(path, ":", header.line, ": column '", header.fields[c], "' appears twice");
    *slot = static_cast<int>(c);
  }
  for (auto [col, name] : {std::pair{col_file, "image_file"}, std::pair{col_lat, "Latitude"},
                           std::pair{col_lon, "Longitude"}}) {
    if (col < 0)
      engine::fail(path, ":", header.line, ": header has no '", name,
                   "' column (expected image_file,Latitude,Longitude)");
  }

  std::vector<GeoRecord> records;
  records.reserve(rows.size() - 1);
  for (size_t r = 1; r < rows.size(); ++r) {
    const Row& row = rows[r];
    if (row.fields.size() != header.fields.size())
      engine::fail(path, ":", row.line, ": ", row.fields.size(), " fields but the header has ",
                   header.fields.size());
    GeoRecord rec;
    rec.image_file = trim(row.fields[col_file]);
    if (rec.image_file.empty()) engine::fail(path, ":", row.line, ": empty image_file");
    rec.lat = parse_coordinate(row.fields[col_lat], "Latitude", 90.0, path, row.line);
    rec.lon = parse_coordinate(row.fields[col_lon], "Longitude", 180.0, path, row.line);
    records.push_back(std::move(rec));
  }
  return records;
}

void write_metadata_csv(const std::string& path, const std::vector<GeoRecord>& records) {
  std::string text = "image_file,Latitude,Longitude\n";
  for (size_t i = 0; i < records.size(); ++i) {
    const GeoRecord& r = records[i];
    engine::check(!r.image_file.empty(), "write_metadata_csv ", path, ": record ", i,
                  " has an empty image_file");
    engine::check(std::isfinite(r.lat) && std::fabs(r.lat) <= 90.0 && std::isfinite(r.lon) &&
                      std::fabs(r.lon) <= 180.0,
                  "write_metadata_csv ", path, ": record ", i, " (", r.image_file,
                  ") has an invalid position (", r.lat, ", ", r.lon, ")");
    text += csv_field(r.image_file) + "," + shortest(r.lat) + "," + shortest(r.lon) + "\n";
  }
  write_file_atomic(path, text);
}

}  // namespace i2g
