// A small data round trip: pickle a graph with cycles, Maps, typed arrays and errors,
// decode it in a fresh node process, and print what came back.
import { spawnSync } from 'node:child_process';
import { dumps } from '../dist/index.js';

const team = { name: 'search', members: new Map(), created: new Date('2024-05-01T12:00:00Z') };
team.members.set('ada', { role: 'lead', team });
team.scores = new Float64Array([0.5, 0.25, 0.125]);
team.lastError = new RangeError('quota exceeded', { cause: { limit: 100 } });

const bytes = await dumps(team);
console.log(`pickled ${bytes.length} bytes`);

const child = `
  import { loads } from ${JSON.stringify(new URL('../dist/index.js', import.meta.url).href)};
  const chunks = []; for await (const c of process.stdin) chunks.push(c);
  const team = await loads(Buffer.concat(chunks));
  console.log('decoded in a fresh process:', team.name, [...team.members.keys()]);
  console.log('cycle kept:', team.members.get('ada').team === team);
  console.log('typed array:', team.scores, 'date:', team.created.toISOString());
  console.log('error:', team.lastError.name, team.lastError.message, 'cause', team.lastError.cause);
`;
const r = spawnSync(process.execPath, ['--input-type=module', '-e', child], { input: bytes, encoding: 'utf8' });
process.stdout.write(r.stdout);
process.stderr.write(r.stderr);
process.exit(r.status ?? 1);
