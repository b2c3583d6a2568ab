# Derives tests/contracts/vendor/snowflake/derived/sqlapi.nullable-rowtype.yaml from the vendor sqlapi.yaml (run from the repository root; see tests/contracts/vendor/SOURCES.md).
# Snowflake answers `null` for the rowType fields that do not apply to a column (precision and scale
# of a TEXT column, length and byteLength of a FIXED one); the vendor spec types them as plain
# integers, so Prism would flag every real response. Only those fields change.
import hashlib
src='tests/contracts/vendor/snowflake/sqlapi.yaml'
dst='tests/contracts/vendor/snowflake/derived/sqlapi.nullable-rowtype.yaml'
text=open(src).read()
items='''            rowType:
              type: array
              minItems: 1
              items:
                type: object
                properties:
                  name:
                    type: string
                  type:
                    type: string
'''
assert text.count(items)==1
head,tail=text.split(items)
out=[]; done=set(); lines=tail.split('\n'); i=0
# The integer fields follow `type: string` directly, each as `type`/`format`/`minimum`.
while i < len(lines):
    l=lines[i]; out.append(l)
    field=l.strip().rstrip(':')
    if l.startswith('                  ') and not l.startswith('                   ') and field in ('length','precision','scale'):
        assert lines[i+1]=='                    type: integer', lines[i+1]
        out.append(lines[i+1]); out.append('                    nullable: true'); i+=2; done.add(field)
        if field=='scale':
            out += ['                  byteLength:','                    type: integer','                    format: int64',
                    '                    minimum: 0','                    nullable: true']
        continue
    if field=='nullable' and len(done)==3: out += lines[i+1:]; break
    i+=1
assert done=={'length','precision','scale'}, done
open(dst,'w').write(head+items+'\n'.join(out))
print(hashlib.sha256(open(dst,'rb').read()).hexdigest())
