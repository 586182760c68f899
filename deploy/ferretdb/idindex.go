package main

// FerretDB 1.24's SQLite backend indexes _id as `_ferretdb_sjson->"_id"` but looks documents up by
// `_ferretdb_sjson->'$._id'`, an expression SQLite does not match to that index: every find, update and delete
// by _id scans the whole table (an update of one suggestion among 20,000 took 90 ms; with the index below, 2 ms).
// Until upstream matches the two, this program adds an index on the expression the lookups use to every
// collection's table. Such an index is invisible to FerretDB (it lists indexes from its own metadata) and is
// dropped with its table.

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // the SQLite driver FerretDB itself uses
)

const idExpression = `_ferretdb_sjson->'$._id'`

// indexIDLookups keeps every collection table in the data directory indexed on idExpression until ctx ends.
func indexIDLookups(ctx context.Context, dir string, every time.Duration) {
	open := map[string]*sql.DB{}
	defer func() {
		for _, db := range open {
			db.Close()
		}
	}()
	for {
		files, _ := filepath.Glob(filepath.Join(dir, "*.sqlite"))
		for _, file := range files {
			db, ok := open[file]
			if !ok {
				var err error
				db, err = sql.Open("sqlite", "file:"+file+"?_pragma=busy_timeout(10000)")
				if err != nil {
					log.Printf("id index: cannot open %s: %v", file, err)
					continue
				}
				open[file] = db
			}
			if err := indexTables(ctx, db); err != nil && ctx.Err() == nil {
				log.Printf("id index: %s: %v", filepath.Base(file), err)
				if _, statErr := os.Stat(file); statErr != nil { // the database was dropped
					db.Close()
					delete(open, file)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

func indexTables(ctx context.Context, db *sql.DB) error {
	rows, err := db.QueryContext(ctx, `SELECT t.name FROM sqlite_master t
		WHERE t.type = 'table' AND t.sql LIKE '%_ferretdb_sjson%'
		AND NOT EXISTS (SELECT 1 FROM sqlite_master i WHERE i.type = 'index' AND i.name = t.name || '__id_lookup')`)
	if err != nil {
		return err
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			rows.Close()
			return err
		}
		tables = append(tables, name)
	}
	rows.Close()
	for _, table := range tables {
		if strings.ContainsAny(table, `"`) {
			continue
		}
		q := fmt.Sprintf(`CREATE INDEX IF NOT EXISTS "%s__id_lookup" ON "%s" (%s)`, table, table, idExpression)
		if _, err := db.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	return nil
}
