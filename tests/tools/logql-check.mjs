// Checks LogQL syntax with Grafana's own LogQL grammar (@grafana/lezer-logql, the parser
// Grafana's query editor uses). Input: a JSON file holding an array of query strings.
// Prints one line per query; exits 1 if any query has a syntax error.
import { readFileSync } from "node:fs";
import { parser } from "@grafana/lezer-logql";

const queries = JSON.parse(readFileSync(process.argv[2], "utf8"));
let failed = 0;
for (const query of queries) {
  const errors = [];
  parser.parse(query).iterate({
    enter: (node) => {
      if (node.type.isError) errors.push(node.from);
    },
  });
  if (errors.length) {
    failed++;
    const at = errors[0];
    console.log(`ERROR at ${at}: ${query}\n         ${" ".repeat(at)}^`);
  } else {
    console.log(`ok: ${query}`);
  }
}
process.exit(failed ? 1 : 0);
