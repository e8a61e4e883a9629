"""Posts one case of the differential suite with the Python Client and prints the answers as
one JSON line, with only what is incidental left out (timestamps, generated ids).
Usage: client.py PROTOCOL PORT CASE"""
import json
import sys

import numpy as np
from docarray import DocList
from jina import Client

from execs import Doc, ResultDoc

protocol, port, case = sys.argv[1], int(sys.argv[2]), sys.argv[3]


def docs(n, prefix='d'):
    return DocList[Doc](Doc(id=f'{prefix}{i}', text=f'text {i}') for i in range(n))


def doc_json(d):
    out = {'id': d.id, 'text': d.text, 'tags': dict(getattr(d, 'tags', None) or {})}
    out['chunks'] = [[c.id, c.text] for c in (getattr(d, 'chunks', None) or [])]
    out['matches'] = [[m.id, m.text] for m in (getattr(d, 'matches', None) or [])]
    if getattr(d, 'single_text', None) is not None:
        out['single_text'] = d.single_text.text
    if getattr(d, 'texts', None) is not None:
        out['texts'] = [t.text for t in d.texts]
    if getattr(d, 'embedding', None) is not None:
        e = np.asarray(d.embedding)
        out['embedding'] = {'dtype': str(e.dtype), 'shape': list(e.shape), 'values': e.tolist()}
    return out


def typed_docs():
    # As in Jina's own test of `when:` on a join; t0 matches no branch.
    return DocList[Doc](
        Doc(id=f't{n}', text=f'type{n}', tags={'type': n}) for n in (1, 2, 0)
    )


# case -> (endpoint, inputs, keyword arguments of post)
CASES = {
    'chain': ('/index', docs(2), {}),
    'join': ('/index', docs(2), {}),
    'shards': ('/search', docs(2), {}),
    'shards_uses_after': ('/search', docs(2), {}),
    'replicas': ('/index', docs(4), {'request_size': 1}),
    'target_executor': ('/index', docs(2), {'target_executor': 'b'}),
    'parameters': ('/index', docs(1), {'parameters': {'top_k': 3, 'b__only_b': 1}}),
    'raises': ('/fail', docs(2), {}),
    'empty': ('/index', None, {}),
    'request_size': ('/index', docs(7), {'request_size': 3}),
    'embeddings': ('/index', docs(3, prefix='client-id-'), {}),
    'endpoint_of_one': ('/only', docs(2), {}),
    'shards_any': ('/index', docs(4), {'request_size': 1}),
    'uses_after_matrix': ('/search', docs(2), {}),
    'shards_conflict': ('/write', docs(2), {}),
    'join_conflict': ('/index', docs(2), {}),
    'when_join': ('/index', typed_docs(), {}),
    'no_endpoint': ('/nowhere', docs(2), {}),
    'custom_schema': ('/nested', docs(2), {'return_type': DocList[ResultDoc]}),
    'params_model': ('/typed', docs(1), {'parameters': {'text': 'hi'}}),
    'params_model_invalid': ('/typed', docs(1), {'parameters': {'top_k': 'many'}}),
    'params_model_missing': ('/typed', docs(1), {'parameters': {'top_k': 4}}),
}

endpoint, inputs, kwargs = CASES[case]
return_type = kwargs.pop('return_type', DocList[Doc])
client = Client(host='127.0.0.1', port=port, protocol=protocol)
answers, errors = [], []
try:
    responses = client.post(
        endpoint,
        inputs=inputs,
        return_responses=True,
        continue_on_error=True,
        on_error=lambda r: errors.append(r.header.status.exception.name or 'error'),
        return_type=return_type,
        **kwargs,
    )
except Exception as e:  # noqa: BLE001 - a gateway that fails the post is an answer too
    message = str(e)[:300].replace(f':{port}', ':PORT')  # the port is each run's own
    print(json.dumps({'post_failed': type(e).__name__, 'message': message}, sort_keys=True))
    sys.exit(0)
for r in responses or []:
    params = dict(r.parameters or {})
    answers.append({
        'status': r.header.status.code,
        'exception': r.header.status.exception.name,
        'parameters': json.loads(json.dumps(params, default=str)),
        'docs': [doc_json(d) for d in r.docs],
    })
# Answers to different requests come in the order they complete, under either runtime; the
# order inside each answer is compared as it is.
answers.sort(key=lambda a: a['docs'][0]['id'] if a['docs'] else '')
if case == 'shards_any':
    # Which shard takes which request is each runtime's own turn-taking: what is compared is
    # that each request went to exactly one shard.
    answers = [
        {
            'status': a['status'],
            'shards_per_doc': [sum(k.startswith('shard') for k in d['tags']) for d in a['docs']],
            'results': len(a['parameters'].get('__results__', {})),
        }
        for a in answers
    ]
raised = None
if errors:
    # Without continue_on_error, a failed request raises.
    try:
        client.post(endpoint, inputs=inputs, return_type=return_type, **kwargs)
    except Exception as e:  # noqa: BLE001 - which exception is what is compared
        raised = type(e).__name__
out = json.dumps({'answers': answers, 'errors': errors, 'raised': raised}, sort_keys=True)
if protocol == 'http' and case in ('shards', 'shards_uses_after', 'uses_after_matrix'):
    # Over HTTP the client posts these to /default (the executors bind only the default), which
    # one shard takes in turn: which one is each runtime's own turn-taking.
    for n in ('0', '1'):
        out = out.replace(f'shard-{n}', 'shard-N').replace(f'shard{n}', 'shardN')
        out = out.replace(f'"shard_id": {n}.0', '"shard_id": "N"')
print(out)
