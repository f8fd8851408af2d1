"""Many messages from one person at once (a busy morning, Teams retrying): every one is
answered, the stored conversation reference stays one row, nothing fails."""

import concurrent.futures

from sqlmodel import select

from storage.models import ConversationRef
from tests.test_teams_journey import clean_env, connector, env, ms  # noqa: F401  (fixtures)


def test_sixty_messages_from_one_person_at_once(env):
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda _: env.teams.say("teacher", "help"), range(60)))
    assert [r.status_code for r in answers] == [200] * 60
    with env.store.session() as s:
        refs = s.exec(select(ConversationRef).where(ConversationRef.person_id == env.world.teacher)).all()
    assert len(refs) == 1 and not refs[0].stale
