-- The exactness fixture: every type and shape the backup must round-trip bit for bit.
-- Loaded into a fresh database by the tests (the statements use the current database).
-- NO_AUTO_VALUE_ON_ZERO keeps an AUTO_INCREMENT id 0, as MLflow's Default experiment has.
SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION,NO_AUTO_VALUE_ON_ZERO';
SET time_zone = '+00:00';

CREATE TABLE integers (
  id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED,
  mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED,
  bi BIGINT, biu BIGINT UNSIGNED
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO integers VALUES
 (0, -128, 0, -32768, 0, -8388608, 0, -2147483648, 0, -9223372036854775808, 0),
 (NULL, 127, 255, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295, 9223372036854775807, 18446744073709551615),
 (NULL, 0, 1, -1, 1, -1, 1, -1, 1, -1, 1),
 (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);

CREATE TABLE numbers (
  id INT PRIMARY KEY,
  d DECIMAL(65,30), d2 DECIMAL(10,2) UNSIGNED,
  f FLOAT, db DOUBLE, fp FLOAT(7,3)
) ENGINE=InnoDB;
INSERT INTO numbers VALUES
 (1, '99999999999999999999999999999999999.999999999999999999999999999999', 0.01, -0.0, -0.0, 1.5),
 (2, '-0.000000000000000000000000000001', 12345678.90, 3.4028234e38, 1.7976931348623157e308, -9999.999),
 (3, 0, 0, -3.4028234e38, -1.7976931348623157e308, 0),
 (4, 1, 1, 1.17549435e-38, 2.2250738585072014e-308, 0.001),
 (5, 2, 2, 1.4e-45, 4.9e-324, NULL),
 (6, 3, 3, 0.1, 0.1, 3.14159),
 (7, 4, 4, 16777217, 0.30000000000000004, NULL),
 (8, 5, 5, 1e-7, 123456789012345680000, NULL);

CREATE TABLE bits_and_sets (
  id INT PRIMARY KEY,
  b1 BIT(1), b8 BIT(8), b64 BIT(64), b13 BIT(13),
  e ENUM('a','b','c d','é'), s SET('x','y','z'),
  j JSON
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO bits_and_sets VALUES
 (1, b'0', b'00000000', b'0', b'0', 'a', '', '{"a": 1, "b": [true, null, "x\\ny"], "c": "中文"}'),
 (2, b'1', b'11111111', b'1111111111111111111111111111111111111111111111111111111111111111', b'1010101010101', 'c d', 'x,y,z', '[]'),
 (3, NULL, b'00001010', b'1001', b'1101', 'é', 'y', 'null'),
 (4, b'1', b'00001001', b'0000000001011100', b'0', NULL, NULL, NULL);

CREATE TABLE texts (
  id INT PRIMARY KEY,
  u VARCHAR(200) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci,
  l VARCHAR(200) CHARACTER SET latin1,
  a VARCHAR(200) CHARACTER SET ascii,
  t TEXT CHARACTER SET utf8mb4,
  c CHAR(10)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO texts VALUES
 (1, '中文字符 和 emoji 😀🚀', 'café naïve', 'plain ascii', 'line1\nline2\ttab\\backslash''quote"dq', 'c'),
 (2, NULL, NULL, NULL, NULL, NULL),
 (3, '', '', '', '', ''),
 (4, 'NULL', 'NULL', 'NULL', 'NULL', 'NULL'),
 (5, '\\N', '\\N', '\\N', '\\N', '\\N'),
 (6, 'trailing space ', 'ÿ', '\r\n', CONCAT('nul', CHAR(0), 'byte', CHAR(26)), 'x'),
 (7, '𝄞 musical', '£', '~', REPEAT('长', 1000), ' ');

CREATE TABLE binaries (
  id INT PRIMARY KEY,
  bn BINARY(8), vb VARBINARY(64), bl BLOB, lb LONGBLOB
) ENGINE=InnoDB;
INSERT INTO binaries VALUES
 (1, x'00090A0D5C27220A', x'005C4E', x'00000000', x'FFFEFDFC00'),
 (2, '', '', '', ''),
 (3, NULL, NULL, NULL, NULL),
 (4, 'NULL', '\\N', x'5C', x'09'),
 (5, x'0102', x'0A0A0A', REPEAT(x'00FF5C0A09', 5000), REPEAT(x'01', 70000));

CREATE TABLE temporals (
  id INT PRIMARY KEY,
  d DATE, t TIME, t6 TIME(6), dt DATETIME, dt6 DATETIME(6), dt3 DATETIME(3),
  ts TIMESTAMP NULL DEFAULT NULL, ts6 TIMESTAMP(6) NULL DEFAULT NULL, y YEAR
) ENGINE=InnoDB;
INSERT INTO temporals VALUES
 (1, '2026-11-28', '838:59:59', '-838:59:59.000000', '9999-12-31 23:59:59', '2026-11-28 12:34:56.123456', '2026-01-01 00:00:00.5', '2038-01-19 03:14:07', '1970-01-01 00:00:01.000001', 2155),
 (2, '0000-00-00', '-838:59:59', '00:00:00.000001', '0000-00-00 00:00:00', '0000-00-00 00:00:00.000000', '1000-01-01 00:00:00.000', '0000-00-00 00:00:00', NULL, 0),
 (3, '1000-01-01', '-00:00:01', '-12:34:56.789012', '1000-01-01 00:00:00', '1000-01-01 00:00:00.000001', NULL, '2026-03-29 01:30:00', '2026-11-28 00:00:00.999999', 1901),
 (4, '2024-02-29', '00:00:00', NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (5, '2026-00-00', '12:00:00', '23:59:59.999999', '2026-11-00 00:00:00', '2026-11-28 23:59:59.999999', '2026-11-28 23:59:59.999', NULL, NULL, 2026);

CREATE TABLE generated (
  id INT PRIMARY KEY,
  price DECIMAL(10,2) NOT NULL,
  qty INT NOT NULL,
  total DECIMAL(12,2) AS (price * qty) STORED,
  label VARCHAR(64) AS (CONCAT('item-', id)) VIRTUAL
) ENGINE=InnoDB;
INSERT INTO generated (id, price, qty) VALUES (1, 9.99, 3), (2, 0.01, 0), (3, 100, -2);

CREATE TABLE no_pk (a INT, b VARCHAR(10)) ENGINE=InnoDB;
INSERT INTO no_pk VALUES (1, 'dup'), (1, 'dup'), (1, 'dup'), (NULL, NULL), (NULL, NULL), (2, '');

CREATE TABLE `weird name; with `` backtick` (
  `select` INT PRIMARY KEY,
  `from` VARCHAR(20),
  `col with space` INT,
  `order` TEXT
) ENGINE=InnoDB;
INSERT INTO `weird name; with `` backtick` VALUES (1, 'where', 2, 'group by'), (2, ';', NULL, '`');

CREATE TABLE `表格` (`名字` VARCHAR(20) PRIMARY KEY, `值` INT) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO `表格` VALUES ('一', 1), ('二', 2);

CREATE TABLE empty_table (id INT PRIMARY KEY, v VARCHAR(10)) ENGINE=InnoDB;

-- A foreign-key chain whose alphabetical order is the reverse of its dependency order.
CREATE TABLE fk_a_root (id INT PRIMARY KEY, name VARCHAR(20)) ENGINE=InnoDB;
CREATE TABLE fk_b_mid (id INT PRIMARY KEY, root_id INT, FOREIGN KEY (root_id) REFERENCES fk_a_root(id) ON DELETE CASCADE) ENGINE=InnoDB;
CREATE TABLE fk_0_leaf (id INT PRIMARY KEY, mid_id INT, parent_id INT,
  FOREIGN KEY (mid_id) REFERENCES fk_b_mid(id),
  FOREIGN KEY (parent_id) REFERENCES fk_0_leaf(id)) ENGINE=InnoDB;
INSERT INTO fk_a_root VALUES (1, 'root'), (2, 'root2');
INSERT INTO fk_b_mid VALUES (10, 1), (11, 2);
INSERT INTO fk_0_leaf VALUES (100, 10, NULL), (101, 11, 100), (102, 10, 101);

-- An audit table a trigger writes to: if triggers fired during restore, it would grow.
CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, what VARCHAR(100)) ENGINE=InnoDB;
CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, amount DECIMAL(10,2), note VARCHAR(50)) ENGINE=InnoDB;
CREATE TRIGGER orders_ai AFTER INSERT ON orders FOR EACH ROW
  INSERT INTO audit (what) VALUES (CONCAT('order ', NEW.id));
DELIMITER ;;
CREATE TRIGGER orders_bi BEFORE INSERT ON orders FOR EACH ROW
  BEGIN
    IF NEW.note IS NULL THEN SET NEW.note = 'set by trigger'; END IF;
  END;;
DELIMITER ;
INSERT INTO orders (amount, note) VALUES (10.00, NULL), (20.50, 'given');

CREATE FUNCTION double_it(x INT) RETURNS INT DETERMINISTIC RETURN x * 2;
DELIMITER ;;
CREATE PROCEDURE count_orders(OUT n INT) BEGIN SELECT COUNT(*) INTO n FROM orders; END;;
DELIMITER ;

CREATE VIEW v_orders AS SELECT id, amount, double_it(id) AS twice FROM orders;
CREATE VIEW `a view on a view` AS SELECT id, twice FROM v_orders WHERE twice > 1;
